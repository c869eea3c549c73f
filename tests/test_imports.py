"""The project's main boundary, checked rather than claimed: the table side (records, fit,
report, the grow logic) never imports torch or Lightning, so `scalinglab-fit` starts fast
anywhere; no import cycle exists, not even behind an import inside a function; and Hydra's
plugin scan, which every Hydra app in the environment runs, imports nothing of scalinglab."""

import subprocess
import sys

import grimp
import pytest

TABLE_SIDE = ("scalinglab.records", "scalinglab.fit", "scalinglab.report", "scalinglab.grow",
              "scalinglab.files", "scalinglab.exits")
TRAINING_STACK = ("torch", "lightning", "pytorch_lightning", "torchmetrics")


@pytest.fixture(scope="module")
def graph():
    # grimp reads every import statement, those inside functions included
    return grimp.build_graph("scalinglab", "hydra_plugins", include_external_packages=True)


@pytest.mark.parametrize("module", TABLE_SIDE)
def test_the_table_side_never_imports_torch_or_lightning(graph, module):
    for heavy in (m for m in TRAINING_STACK if m in graph.modules):
        chain = graph.find_shortest_chain(importer=module, imported=heavy, as_packages=True)
        assert chain is None, f"{module} imports {heavy}: {' -> '.join(chain)}"


def test_no_module_imports_itself_back(graph):
    internal = sorted(m for m in graph.modules
                      if m.startswith(("scalinglab", "hydra_plugins.scalinglab_")))
    for module in internal:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            assert back is None, f"import cycle: {module} -> {' -> '.join(back)}"


def test_the_packages_form_no_cycle(graph):
    """scalinglab's subpackages and modules, each squashed to one node: a tree of layers."""
    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    parts = sorted({part(m) for m in graph.modules if m.startswith("scalinglab.")})
    for a in parts:
        for b in parts:
            if a < b and graph.chain_exists(a, b, as_packages=True):
                chain = graph.find_shortest_chain(b, a, as_packages=True)
                assert chain is None, (f"{a} and {b} import each other: "
                                       f"{' -> '.join(part(m) for m in chain)}")


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint(*sys.modules)"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return {name.split(".")[0] for name in out.split()}


def test_the_fit_and_the_report_start_without_the_training_stack():
    loaded = _imported_after("import scalinglab.fit.cli, scalinglab.report.page, "
                             "scalinglab.records.tables, scalinglab.grow")
    assert not loaded & set(TRAINING_STACK)


def test_hydras_plugin_scan_imports_nothing_of_ours():
    loaded = _imported_after("from hydra.core.plugins import Plugins\n"
                             "from hydra.plugins.sweeper import Sweeper\n"
                             "assert 'GrowSweeper' in [p.__name__ for p in "
                             "Plugins.instance().discover(Sweeper)]")
    assert not loaded & {"scalinglab", "pandas", "scipy", *TRAINING_STACK}

