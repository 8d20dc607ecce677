"""Runs: a model you can sample from (:mod:`.handle`), opening diffview run folders (:mod:`.open`) and
diffusers folders (:mod:`.diffusers_model`)."""
