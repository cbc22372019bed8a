"""Which packages the wheel holds; everything else is in pyproject.toml.

The standalone project (``project/``) goes in as ``scs_django.project``, so an installed copy
never puts a package named ``project`` on everyone's path.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["realtime", "realtime.*", "mcp_sidecar", "mcp_sidecar.*", "scs_django"]),
              "scs_django.project"],
    package_dir={"scs_django.project": "project"},
)
