"""Scoring pipelines on raw text: entities as character spans."""
