"""Tiny fake trees with the exact layouts and file names of real corpora.

Each ``make_*`` builds a few speakers with 0.2 s of noise per file at the
corpus's native sample rate, so preparation code meets the real layout
without the real data.
"""

import json
import os

import numpy as np
import soundfile

DURATION = 0.2
# A tiny ECAPA-TDNN and batch for the recipes' smoke runs.
TINY_ECAPA = [
    "--channels=[16, 16, 16, 16, 48]",
    "--attention_channels=8",
    "--lin_neurons=16",
    "--n_mels=24",
    "--batch_size=4",
    "--eval_batch_size=8",
]


def write_wav(path, rate=16000, seed=0):
    """Write ``DURATION`` seconds of noise, creating folders as needed.

    Example
    -------
    >>> import tempfile, os, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a", "x.wav")
    >>> write_wav(path, 8000)
    >>> soundfile.info(path).frames
    1600
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    noise = 0.1 * rng.standard_normal(int(DURATION * rate))
    soundfile.write(path, noise.astype(np.float32), rate, subtype="PCM_16")


def make_esd(
    root,
    speakers=("0001", "0002", "0011", "0012", "0015", "0016"),
    per_emotion=2,
    split_folders=True,
    transcripts=True,
):
    """An ESD tree; returns the list of (speaker, emotion folder, wav path).

    Example
    -------
    >>> import tempfile
    >>> files = make_esd(tempfile.mkdtemp(), speakers=("0011",), per_emotion=1)
    >>> len(files)
    5
    """
    files = []
    for spk in speakers:
        lines = []
        index = 0
        for emo in ("Neutral", "Happy", "Angry", "Sad", "Surprise"):
            for k in range(per_emotion):
                index += 1
                uid = f"{spk}_{index:06d}"
                sub = (
                    ("train", "evaluation", "test")[k % 3]
                    if split_folders
                    else ""
                )
                path = os.path.join(root, spk, emo, sub, uid + ".wav")
                write_wav(path, 16000, index)
                files.append((spk, emo, path))
                lines.append(f"{uid}\tSentence {index}.\t{emo}\n")
        if transcripts:
            with open(os.path.join(root, spk, f"{spk}.txt"), "w") as f:
                f.writelines(lines)
    return files


def make_cremad(root, actors=range(1001, 1007), demographics=True):
    """A CREMA-D tree; returns actor -> gender (``M`` for odd positions).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> make_cremad(d, actors=[1001])
    {'1001': 'M'}
    >>> len(os.listdir(os.path.join(d, "AudioWAV")))
    12
    """
    genders = {}
    for i, actor in enumerate(actors):
        genders[str(actor)] = "MF"[i % 2]
        for k, emo in enumerate(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")):
            for sentence, level in (("DFA", "XX"), ("IEO", "HI")):
                name = f"{actor}_{sentence}_{emo}_{level}.wav"
                write_wav(os.path.join(root, "AudioWAV", name), 16000, k)
    if demographics:
        with open(os.path.join(root, "VideoDemographics.csv"), "w") as f:
            f.write("ActorID,Age,Sex,Race,Ethnicity\n")
            for actor, gender in genders.items():
                sex = {"M": "Male", "F": "Female"}[gender]
                f.write(f"{actor},30,{sex},Caucasian,Not Hispanic\n")
    return genders


def make_ravdess(root, actors=range(1, 7), song=True):
    """A RAVDESS speech tree at 48 kHz; returns the number of speech files.

    Each actor says both statements once in every emotion; with ``song``
    a song file (vocal channel 02) is added per actor.

    Example
    -------
    >>> import tempfile
    >>> make_ravdess(tempfile.mkdtemp(), actors=[1], song=False)
    16
    """
    count = 0
    for actor in actors:
        folder = os.path.join(root, f"Actor_{actor:02d}")
        for emo in range(1, 9):
            for statement in (1, 2):
                name = f"03-01-{emo:02d}-01-{statement:02d}-01-{actor:02d}.wav"
                write_wav(os.path.join(folder, name), 48000, emo)
                count += 1
        if song:
            name = f"03-02-03-01-01-01-{actor:02d}.wav"
            write_wav(os.path.join(folder, name), 48000)
    return count


EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")


def make_emodb(root, speakers=EMODB_SPEAKERS):
    """An EmoDB tree: every speaker, 7 emotions, texts a01 and b02.

    Example
    -------
    >>> import tempfile
    >>> len(make_emodb(tempfile.mkdtemp(), speakers=["03"]))
    14
    """
    files = []
    for spk in speakers:
        for k, letter in enumerate("WLEAFTN"):
            for text in ("a01", "b02"):
                name = f"{spk}{text}{letter}a.wav"
                write_wav(os.path.join(root, "wav", name), 16000, k)
                files.append(name)
    return files


IEMOCAP_LABELS = ("neu", "hap", "ang", "sad", "exc", "fru", "xxx", "sur")


def make_iemocap(root, sessions=range(1, 6)):
    """An IEMOCAP tree; returns utterance -> raw label.

    Every session has an improvised and a scripted dialog; each speaker
    says one utterance per label of :data:`IEMOCAP_LABELS` in each.

    Example
    -------
    >>> import tempfile
    >>> labels = make_iemocap(tempfile.mkdtemp(), sessions=[1])
    >>> labels["Ses01F_impro01_M001"]
    'hap'
    """
    labels = {}
    for n in sessions:
        session = os.path.join(root, f"Session{n}")
        for dialog in (f"Ses0{n}F_impro01", f"Ses0{n}M_script01_1"):
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n"]
            texts = []
            start = 1.0
            for speaker in "FM":
                for i, label in enumerate(IEMOCAP_LABELS):
                    utt = f"{dialog}_{speaker}{i:03d}"
                    wav = os.path.join(
                        session, "sentences", "wav", dialog, utt + ".wav"
                    )
                    write_wav(wav, 16000, i)
                    labels[utt] = label
                    lines.append("\n")
                    lines.append(
                        f"[{start:.4f} - {start + 0.2:.4f}]\t{utt}\t{label}\t"
                        "[2.5000, 2.5000, 2.5000]\n"
                    )
                    lines.append(f"C-E1:\t{label};\t()\n")
                    texts.append(
                        f"{utt} [{start:08.4f}-{start + 0.2:08.4f}]: "
                        f"Line {i} of {speaker}.\n"
                    )
                    start += 1.0
            folder = os.path.join(session, "dialog", "EmoEvaluation")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, dialog + ".txt"), "w") as f:
                f.writelines(lines)
            folder = os.path.join(session, "dialog", "transcriptions")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, dialog + ".txt"), "w") as f:
                f.writelines(texts)
    return labels


DUSHA_LABELS = ("angry", "sad", "neutral", "positive")


def make_dusha(root, speakers=6, per_label=2, fmt="jsonl", extra=()):
    """A Dusha crowd tree; returns hash_id -> (source_id, majority label).

    Speakers ``spk0`` ... go to ``crowd_train`` except the last two, which
    go to ``crowd_test``. Every recording gets three annotator votes, two
    of them for its label. ``extra`` adds recordings given as
    ``(hash_id, source_id, votes, golden)`` to ``crowd_train``.

    Example
    -------
    >>> import tempfile
    >>> truth = make_dusha(tempfile.mkdtemp(), speakers=2, per_label=1)
    >>> sorted({label for _, label in truth.values()})
    ['angry', 'neutral', 'positive', 'sad']
    """
    truth = {}
    records = {"crowd_train": [], "crowd_test": []}
    for s in range(speakers):
        part = "crowd_test" if s >= speakers - 2 else "crowd_train"
        for label in DUSHA_LABELS:
            for k in range(per_label):
                hash_id = f"h{s}{label[:3]}{k}"
                other = DUSHA_LABELS[(DUSHA_LABELS.index(label) + 1) % 4]
                votes = (label, label, other)
                records[part].append((hash_id, f"spk{s}", votes, ""))
                truth[hash_id] = (f"spk{s}", label)
    records["crowd_train"].extend(extra)
    fields = (
        "hash_id",
        "audio_path",
        "duration",
        "annotator_emo",
        "golden_emo",
        "speaker_text",
        "speaker_emo",
        "source_id",
        "annotator_id",
    )
    for part, recs in records.items():
        folder = os.path.join(root, part)
        os.makedirs(folder, exist_ok=True)
        lines = []
        for hash_id, source, votes, golden in recs:
            write_wav(os.path.join(folder, "wavs", hash_id + ".wav"))
            for a, vote in enumerate(votes):
                lines.append(
                    dict(
                        zip(
                            fields,
                            (
                                hash_id,
                                f"wavs/{hash_id}.wav",
                                "0.2",
                                vote,
                                golden,
                                "привет",
                                votes[0],
                                source,
                                f"ann{a}",
                            ),
                        )
                    )
                )
        path = os.path.join(folder, f"raw_{part}.{fmt}")
        with open(path, "w", encoding="utf-8") as f:
            if fmt == "jsonl":
                for line in lines:
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
            else:
                f.write("\t".join(fields) + "\n")
                for line in lines:
                    f.write("\t".join(line[k] for k in fields) + "\n")
    return truth


MSP_CLASSES = "ASHUFDCNOX"


def make_msppodcast(root, speakers=6, old_format=False, unknown=1):
    """An MSP-Podcast tree; returns file name -> (speaker, EmoClass).

    Every speaker has one segment per EmoClass letter of
    :data:`MSP_CLASSES`; the first half are ``Train``, then
    ``Development``, then ``Test1``. ``unknown`` segments have speaker
    ``Unknown``. ``old_format`` writes ``Speaker_ids.txt`` and
    ``Partitions.txt`` instead of the SpkrID/Gender/Split_Set columns.

    Example
    -------
    >>> import tempfile
    >>> truth = make_msppodcast(tempfile.mkdtemp(), speakers=1, unknown=0)
    >>> truth["MSP-PODCAST_0001_0001.wav"]
    ('1', 'A')
    """
    truth, rows = {}, []
    sets = ("Train",) * (speakers // 2) + ("Development", "Test1") * speakers
    for s in range(1, speakers + 1 + unknown):
        spk = str(s) if s <= speakers else "Unknown"
        gender = "Male" if s % 2 else "Female"
        for k, letter in enumerate(MSP_CLASSES):
            name = f"MSP-PODCAST_{s:04d}_{k + 1:04d}.wav"
            write_wav(os.path.join(root, "Audios", name), 16000, k)
            rows.append((name, letter, spk, gender, sets[s - 1]))
            truth[name] = (spk, letter)
    os.makedirs(os.path.join(root, "Labels"), exist_ok=True)
    with open(os.path.join(root, "Labels", "labels_consensus.csv"), "w") as f:
        if old_format:
            f.write("FileName,EmoClass,EmoAct,EmoVal,EmoDom\n")
            for name, letter, *_ in rows:
                f.write(f"{name},{letter},4.0,4.0,4.0\n")
        else:
            f.write("FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,")
            f.write("Split_Set\n")
            for name, letter, spk, gender, split in rows:
                f.write(f"{name},{letter},4.0,4.0,4.0,{spk},{gender},{split}\n")
    if old_format:
        with open(os.path.join(root, "Speaker_ids.txt"), "w") as f:
            for s in range(1, speakers + 1):
                f.write(f"Speaker_{s:04d}; {'Male' if s % 2 else 'Female'}\n")
            for name, _, spk, _, _ in rows:
                f.write(f"{name}; {spk}\n")
        with open(os.path.join(root, "Partitions.txt"), "w") as f:
            for name, _, _, _, split in rows:
                f.write(f"{split}; {name}\n")
    return truth


def make_voxceleb(root, speakers=4, videos=3, utterances=2, meta=True):
    """A VoxCeleb tree ``wav/idXXXXX/<video>/<utt>.wav``; returns genders.

    Example
    -------
    >>> import tempfile
    >>> make_voxceleb(tempfile.mkdtemp(), speakers=2, videos=1, utterances=1)
    {'id10001': 'M', 'id10002': 'F'}
    """
    genders = {}
    for s in range(1, speakers + 1):
        spk = f"id1{s:04d}"
        genders[spk] = "MF"[(s - 1) % 2]
        for v in range(videos):
            for u in range(1, utterances + 1):
                path = os.path.join(
                    root, "wav", spk, f"vid{v}xYz", f"{u:05d}.wav"
                )
                write_wav(path, 16000, u)
    if meta:
        with open(os.path.join(root, "vox1_meta.csv"), "w") as f:
            f.write("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n")
            for spk, gender in genders.items():
                f.write(f"{spk}\tName_{spk}\t{gender.lower()}\tUSA\tdev\n")
    return genders


def make_synth(root, emotions=(("neu", "ang"),) * 6, utterances=2):
    """A demo-corpus folder as the synthesizer writes it, noise for speech.

    Arguments
    ---------
    root : str
        The corpus folder (``--out`` of the synthesizer).
    emotions : sequence of sequence of str
        The emotions of each speaker, one entry per speaker.
    utterances : int
        Utterances per speaker and emotion.

    Returns
    -------
    dict
        Split -> speakers (``splits.json``): the last two speakers (one
        of three) are the test split, the one before them dev, the rest
        train, as the synthesizer splits them.

    Example
    -------
    >>> import tempfile
    >>> make_synth(tempfile.mkdtemp(), [["neu"]] * 4)["test"]
    ['spk002', 'spk003']
    """
    from emotion_invariant.data.manifest import write_manifest

    speakers = [f"spk{k:03d}" for k in range(len(emotions))]
    rows = []
    for k, (spk, emos) in enumerate(zip(speakers, emotions)):
        for emo in emos:
            for u in range(utterances):
                uid = f"{spk}_{emo}_{u:03d}"
                rel = f"wavs/{spk}/{uid}.wav"
                write_wav(os.path.join(root, rel), 16000, k + u)
                rows.append(
                    {
                        "ID": uid,
                        "duration": DURATION,
                        "wav": "$data_root/" + rel,
                        "spk_id": spk,
                        "emo": emo,
                        "gender": "MF"[k % 2],
                    }
                )
    n_test = 2 if len(speakers) >= 4 else 1
    splits = {
        "train": speakers[: -n_test - 1],
        "dev": speakers[-n_test - 1 : -n_test],
        "test": speakers[-n_test:],
    }
    write_manifest(rows, os.path.join(root, "synth.csv"))
    with open(os.path.join(root, "splits.json"), "w") as f:
        json.dump(splits, f)
    return splits


def check_prepared(outputs, corpus):
    """Check what a preparation wrote against itself; return manifest rows.

    Speakers never cross folds or (speaker) splits, the folds and splits
    files agree with the manifest, and every trial compares two test
    utterances, is a target exactly when both have the same speaker, and
    names the emotions of both as its condition.

    Example
    -------
    >>> try:
    ...     check_prepared({}, "esd")
    ... except AssertionError:
    ...     print("no manifest, refused")
    no manifest, refused
    """
    from emotion_invariant.data.manifest import read_manifest, read_splits

    assert "manifest" in outputs, "no manifest written"
    rows = read_manifest(outputs["manifest"], check_audio=True)
    by_id = {row["ID"]: row for row in rows}
    with open(outputs["folds"]) as f:
        folds = json.load(f)
    assert folds["corpus"] == corpus
    for label, speakers in folds["folds"].items():
        for spk in speakers:
            assert {r["fold"] for r in rows if r["spk_id"] == spk} == {label}
    if "splits" in outputs:
        splits = read_splits(outputs["splits"], rows)
        for name, speakers in splits.items():
            for spk in speakers:
                assert {r["split"] for r in rows if r["spk_id"] == spk} == {
                    name
                }
        assert not folds["speaker_overlap"]
    if "trials" in outputs:
        with open(outputs["trials"]) as f:
            trials = [line.split() for line in f]
        assert trials
        for label, enrol, test, condition in trials:
            a, b = by_id[enrol], by_id[test]
            assert a["split"] == b["split"] == "test"
            assert (label == "1") == (a["spk_id"] == b["spk_id"])
            assert condition == f"{a['emo']}-{b['emo']}"
    for name in ("train", "dev", "test"):
        if name in outputs:
            part = read_manifest(outputs[name])
            assert [r["ID"] for r in part] == [
                r["ID"] for r in rows if r["split"] == name
            ]
    return rows
