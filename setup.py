"""Package discovery for the repository layout (everything else is in pyproject.toml).

`adapters/` and `schemas/` keep the repository readable; they install as
`platypus_adapters` and `platypus_schemas` so they never clash with other
distributions. A new vendor folder under `adapters/` is picked up here with no
edit to any list.
"""

from setuptools import find_packages, setup

_RENAMED = {"platypus_adapters": "adapters", "platypus_schemas": "schemas"}

packages = find_packages(include=["platypus", "platypus.*"])
for name, folder in _RENAMED.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir={"": ".", **_RENAMED})
