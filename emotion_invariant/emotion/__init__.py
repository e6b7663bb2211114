"""Speech emotion recognition: datasets, the model of a run, metrics,
reports, the speaker probe."""
