"""Everything that uses a trained model: ``http`` (the BentoML service), ``batch`` (lead lists on one
machine or Spark), ``monitoring`` (drift over served traffic), ``ui`` (the profile page) and ``cli``
(the ``crmscore`` command line), plus ``settings`` shared by them.

May import ``features`` and ``training``; neither of those imports from here.
"""
