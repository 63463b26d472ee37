"""The evaluation lab: numbers that answer the study notes' questions.

* :mod:`backend.lab.evaluation` — metrics against gold labels (Spearman, Pearson, AUC, best F1);
* :mod:`backend.lab.calibration` — what a score means against random pairs;
* :mod:`backend.lab.probe` — Spearman per BERT layer and pooling;
* :mod:`backend.lab.retrieval` — recall then rerank (MRR, recall@k);
* :mod:`backend.lab.verdicts` — one-sentence verdicts from those numbers;
* :mod:`backend.lab.projection` — 2-D maps and clusters of vectors;
* :mod:`backend.lab.presets` — the demo pairs written to expose each family's blind spots;
* :mod:`backend.lab.evaluation_cli` — the ``evaluate`` and ``probe`` commands.
"""
