"""Built-in settings for the installed package (``scs-django``): the standalone project's settings.

Everything comes from the environment as in a checkout (``.env`` in the working directory and
shared-context-server 1.1's names included). The data folder (database, generated secrets) is
``SCS_DATA_DIR``, by default the user's data directory (``~/.local/share/scs-django`` on Linux,
``~/Library/Application Support/scs-django`` on macOS), never inside site-packages.
"""

import importlib
import os

import platformdirs

try:  # installed: the wheel carries the project as scs_django.project
    PROJECT = importlib.import_module("scs_django.project").__name__
except ImportError:  # a checkout
    PROJECT = "project"

importlib.import_module(f"{PROJECT}.env").load_environment()
if not os.environ.get("SCS_DATA_DIR", "").strip():
    os.environ["SCS_DATA_DIR"] = platformdirs.user_data_dir("scs-django", appauthor=False)

globals().update({name: value for name, value in vars(importlib.import_module(f"{PROJECT}.settings")).items()
                  if name.isupper()})
