"""Maps the one ``comet`` import namespace onto the component folders.

Each of server/, agent/, gui/ and proto/python/ holds part of ``comet``; setuptools
cannot discover a namespace spread over several roots by itself.
"""

from setuptools import find_namespace_packages, setup

ROOTS = ("server", "agent", "gui", "proto/python")

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ROOTS:
    for package in find_namespace_packages(root, include=["comet.*"]):
        packages.append(package)
        package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
