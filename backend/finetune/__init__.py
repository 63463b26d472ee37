"""Fine-tuning on a user's labelled pairs: a bi-encoder (:mod:`backend.finetune.bi`), a cross-encoder (through
:mod:`backend.cross.train`), the learning curve (:mod:`backend.finetune.curve`) and the command line
(``python -m backend finetune``, :mod:`backend.finetune.cli`).

Nothing here imports torch at module level: the training code loads it when a run starts.
"""
