"""The customer profile page (客户画像) served at ``/ui``.

What lives here:

- ``index``: the data dir indexed in memory once per worker (``ProfileIndex``, search, ``load_profiles``);
- ``page``: what the page shows about one customer (record, lead/churn scores through the service's own
  scoring steps, segment, funnel, timeline);
- ``routes``: the HTTP responses (the page and its JSON API) and the page's Content-Security-Policy;
- ``static/``: the page itself, ``profile.html``, ``profile.css`` and ``profile.js`` (package data, read once
  at start-up through ``importlib.resources``).

``serving.http.service`` imports ``UI_API_PATHS``, ``load_profiles`` and the four responses from ``page``.
May import ``features``, ``serving.settings`` and ``serving.http`` schemas/loader/postprocess.
"""
