r"""Writes a TF Serving `model_config_list` for a directory of exported objectives.

  serving_config --export_dir=export --out=/tmp/models.config
  serving_config --export_dir=export --base_path_prefix=/models --version_policy=all

A model server then serves every model in it (README, "Serving"):
  tensorflow_model_server --rest_api_port=8501 --model_config_file=/tmp/models.config
"""
from absl import flags

from tf_metarl.bin import common

_EXPORT_DIR = flags.DEFINE_string("export_dir", "export", "Directory of exported models (<name>/<version>/).")
_OUT = flags.DEFINE_string("out", None, "Where to write the config (default: print it).")
_VERSION_POLICY = flags.DEFINE_enum("version_policy", "latest", ["latest", "all"],
                                    "Serve each model's highest version, or every version.")
_BASE_PATH_PREFIX = flags.DEFINE_string("base_path_prefix", None,
                                        "The export directory's path as the server sees it (default: absolute path here).")


def main(argv):
  if len(argv) > 1:
    common.fail(f"unexpected positional arguments: {' '.join(argv[1:])}")
  from tf_metarl import serving
  from tf_metarl.file_checks import check_writable_directory
  text = serving.model_config(_EXPORT_DIR.value, _VERSION_POLICY.value, _BASE_PATH_PREFIX.value)
  if not _OUT.value:
    print(text, end="", flush=True)
    return
  import os
  directory = os.path.dirname(os.path.abspath(_OUT.value))
  check_writable_directory(directory, "--out's directory")
  os.makedirs(directory, exist_ok=True)
  with open(_OUT.value, "w") as f:
    f.write(text)
  print(_OUT.value, flush=True)


def run():
  common.run(main)


if __name__ == "__main__":
  run()
