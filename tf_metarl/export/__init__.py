"""SavedModel export and loading of objectives."""
from tf_metarl.export.saved_model import (METADATA_FILE, LoadedObjective, check_export_dir, export_objective,
                                          load_metadata, load_objective, resolve_version_dir,
                                          restore_parameters)

__all__ = ["METADATA_FILE", "LoadedObjective", "check_export_dir", "export_objective", "load_metadata", "load_objective",
           "resolve_version_dir", "restore_parameters"]
