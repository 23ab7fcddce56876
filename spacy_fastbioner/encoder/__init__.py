"""The transformer encoder: finding it in a pipeline, making a student from it,
and adapting it to in-domain text."""
