"""Old home of `resolve_cadence`, kept while `keras_lode/callback.py` still imports it from here.

`Plan` now lives in `keras_lode.planning.plans`, `derive_seed` and `resolve_cadence` in
`keras_lode.planning.replans`. Delete this module once nothing imports
`keras_lode.planning.plan.resolve_cadence`.
"""

from keras_lode.planning.replans import resolve_cadence

__all__ = ["resolve_cadence"]
