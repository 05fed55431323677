"""Where benchmark scripts write their results."""
import json
import os


def write_result(path: str, result: dict) -> None:
  """Writes `result` as indented JSON to `path` (creating its folder) and prints it as one line."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result))
