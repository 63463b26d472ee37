"""Training word2vec (the ``w2v`` family's own vectors): :mod:`backend.w2v.train` and the ``train-w2v`` command
(:mod:`backend.w2v.cli`)."""
