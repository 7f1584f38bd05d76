"""Import one of the commands in scripts/ (run-qemu, report, bench, test-matrix: files without
a .py suffix) as a module, for the scripts that reuse their functions and for the unit tests."""

import importlib.machinery
import importlib.util
import os

HERE = os.path.dirname(os.path.realpath(__file__))


def load_script(name, module_name):
    """scripts/<name>, executed once as a module called module_name."""
    loader = importlib.machinery.SourceFileLoader(module_name, os.path.join(HERE, name))
    spec = importlib.util.spec_from_loader(module_name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
