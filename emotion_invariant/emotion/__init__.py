"""Speech emotion recognition: metrics, reports, the speaker probe."""
