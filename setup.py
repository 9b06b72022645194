"""Package discovery only; all metadata lives in pyproject.toml.

`as/` holds the SIP application server, but `as` is a Python keyword, so it is
installed under the import name `appserver` through `package_dir`.
"""

from setuptools import find_packages, setup

TOP_LEVEL = ["secondnum", "hss_adapter", "charging", "media"]

packages = [p for p in find_packages(".") if p.split(".")[0] in TOP_LEVEL]
packages += ["appserver"] + [f"appserver.{p}" for p in find_packages("as")]

setup(
    packages=packages,
    package_dir={"appserver": "as"},
)
