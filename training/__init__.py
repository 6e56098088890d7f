"""Models out: the scoring pipeline (``model``: the one encoder and ``CRMScorer``), explanations, training
jobs (``train``, ``tabular``), metrics and scores, registry promotion (challenger → champion, ``registry``),
segmentation (``segment`` estimators, ``segment_config``, ``segment_model`` MLflow wrapper, ``segment_fit``
job), BG/NBD (``btyd``).

May import ``features``; never ``serving``.
"""
