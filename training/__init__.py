"""Models out: the scoring pipeline (encoder, classifier, calibration, reasons), training jobs, metrics,
registry promotion (challenger → champion), segmentation and BG/NBD.

May import ``features``; never ``serving``.
"""
