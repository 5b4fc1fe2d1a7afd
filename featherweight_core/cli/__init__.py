"""The single-run commands of ``featherweight`` (distill, analyze, compress, teacher, theseus, augment, bertvision)."""
