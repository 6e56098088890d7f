"""The member programme a CRM team runs every day: member levels (会员等级), customer tags (自动打标) and
audiences (人群), all computed from the contract tables as of a cutoff ``T`` (nothing after ``T`` is read).

* ``config``   — ``configs/members.yaml`` and ``configs/tags.yaml`` as pydantic models (≤ 4 levels, ≤ 100 tags),
  loaded inside the commands; errors name the level or tag and the field.
* ``levels``   — upgrade-only levels over successive runs, manual changes, level history, progress to the next level.
* ``tags``     — rule tags (the :mod:`features.rules` language over a per-customer context frame), product tags
  (bought a listed category within a window) and manual tags kept across runs.
* ``audience`` — picking customers by a rule over tags and context, with marketing consent respected.
* ``outputs``  — reading and writing the output folders (Parquet + CSV + summary JSON, all atomic).

Like the rest of ``features`` this package imports no other crm-scoring package: RFM scores, value tiers and
model grades come in as columns of the context frame, which the command line assembles.
"""
