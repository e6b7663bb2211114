"""Install the emotion_invariant package and its dependencies."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        lines = (line.split("#")[0].strip() for line in f)
        return [line for line in lines if line]


with open(os.path.join(HERE, "README.md")) as f:
    long_description = f.read()

setup(
    name="emotion-invariant",
    version="0.1.0",
    description=(
        "SpeechBrain extension: emotion-invariant speaker verification and "
        "speaker-invariant emotion recognition"
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(
        include=["emotion_invariant", "emotion_invariant.*"]
    ),
    python_requires=">=3.9",
    install_requires=requirements(),
    extras_require={"dev": ["pytest>=8", "ruff>=0.6", "yamllint>=1.30"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
