"""The member programme where it needs trained models or the service: the per-customer tag context
(``context``, shared by ``crmscore tags apply`` and ``POST /segment``), member cards online (``online``:
level, progress and tags of the customers of a request) and the BANT fit grade of leads (``bant``).

The pure parts (levels, tags, audiences, rules) are in :mod:`features.members` and :mod:`features.rules`.
"""
