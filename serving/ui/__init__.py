"""The customer profile page (客户画像) served at ``/ui``: the profile index and its routes.

May import ``features``, ``serving.settings`` and ``serving.http`` schemas/loader.
"""
