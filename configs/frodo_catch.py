"""FRODO on Catch (11 rows x 6 columns): `meta_train --config=configs/frodo_catch.py[:extension]`."""
from configs.meta_train_common import base_config


def get_config(variant: str = ""):
  if variant not in ("", "extension"):
    raise ValueError(f"unknown variant {variant!r}; expected '' or 'extension'")
  c = base_config("catch", "frodo")
  c.frodo.extension = variant == "extension"
  return c
