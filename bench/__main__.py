"""``python -m bench <name> [options]`` runs one benchmark; ``python -m bench all`` runs each in turn."""

import importlib
import pkgutil
import sys
from pathlib import Path

import bench

SUFFIX = "_bench"


def available():
    """Benchmark names -> module names: ``e2e`` and every ``bench/<name>_bench.py``."""
    found = {}
    for module in pkgutil.iter_modules([str(Path(bench.__file__).parent)]):
        if module.name == "e2e":
            found["e2e"] = "e2e"
        elif module.name.endswith(SUFFIX):
            found[module.name.removesuffix(SUFFIX)] = module.name
    return dict(sorted(found.items(), key=lambda item: (item[0] != "e2e", item[0])))


def run(module_name, argv):
    module = importlib.import_module(f"bench.{module_name}")
    return module.main(argv) or 0


def main(argv):
    names = available()
    usage = f"usage: python -m bench {{all,{','.join(names)}}} [options]   (python -m bench <name> --help)"
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        if rest:
            print("'all' runs every benchmark with its default options; give options to one benchmark",
                  file=sys.stderr)
            return 2
        status = 0
        for each, module_name in names.items():
            print(f"\n=== {each} ===", flush=True)
            status = max(status, run(module_name, []))
        return status
    module_name = names.get(name) or names.get(name.removesuffix(SUFFIX))
    if module_name is None:
        print(f"no benchmark named {name!r}\n{usage}", file=sys.stderr)
        return 2
    return run(module_name, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
