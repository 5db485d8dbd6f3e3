"""The degrade stage: seeded, deterministic copies of a manifest's audio under named conditions.

Sits between ingest and embed: it reads a manifest's audio, writes degraded copies into a
content-keyed cache (``storage/degraded.py``) and derived manifests (dataset
``<dataset>@<condition>``) that the embed stage embeds like any other corpus. See
docs/degradation.md for each condition, the presets and how to add one.
"""
