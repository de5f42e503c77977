"""Captioners: name each region; the attribute writer then makes the names referential.

Each module registers its classes in ``annotation_engine.registry.CAPTIONERS``. A captioner's
``describe(rgb, masks) -> list[str | None]`` returns one noun phrase per mask ("dog",
"dark-grey region"), or None where it has nothing to say.
"""
