"""One table of methods: the CLI, the ``register`` command and the evaluation all read it."""

import argparse

import pytest

import slicreg_lite
from slicreg_lite import evaluation, methods
from slicreg_lite.apps import cli
from slicreg_lite.apps.register import register_scans
from slicreg_lite.core.config import get_config
from slicreg_lite.pipeline import load_method


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


def _choices(parser: argparse.ArgumentParser, option: str) -> tuple:
    return tuple(next(a for a in parser._actions if option in a.option_strings).choices)


def test_names_and_labels_are_unique():
    names = [m.name for m in methods.METHODS]
    labels = [m.label for m in methods.METHODS]
    assert len(set(names)) == len(names) and len(set(labels)) == len(labels)


def test_the_cli_offers_the_tables_methods_for_new_scans():
    offered = _choices(_subparser("register"), "--method")
    assert offered == methods.REGISTER_NAMES
    assert offered == tuple(m.name for m in methods.METHODS if m.on_new_scans)
    assert set(offered) == {"slicreg", "slicreg-fit", "regression", "pdd", "teacher"}


def test_the_evaluation_rows_are_the_table(monkeypatch):
    """``evaluate`` iterates the table: every row, in its order, by its label."""
    assert evaluation.METHODS is methods.METHODS
    assert [m.label for m in evaluation.METHODS][:2] == [methods.INITIAL, methods.TEACHER]
    assert methods.method_named(methods.SLIC_REG).name == "slicreg"
    assert methods.method_named("slicreg-fit").label == methods.CENTRE_FIT


def test_the_register_command_refuses_names_outside_the_table(tmp_path):
    with pytest.raises(ValueError, match="method must be one of .*'teacher'.*'slicreg'"):
        register_scans(tmp_path / "moving.nii.gz", method="pdd-labels")
    with pytest.raises(ValueError, match="oracle"):
        register_scans(tmp_path / "moving.nii.gz", method="oracle")


def test_unknown_and_measurement_rows_are_refused_by_load_method():
    with pytest.raises(ValueError, match="unknown method 'nope'; expected one of"):
        methods.method_named("nope")
    with pytest.raises(ValueError, match="a measurement of the evaluation"):
        load_method(get_config("smoke"), "phantom", "oracle")


def test_train_all_trains_the_networks_the_table_needs():
    assert methods.networks_needed() == (("pdd", "unsupervised"), ("pdd", "labels"),
                                         ("unet", "regression"), ("unet", "slic"),
                                         ("deeplab", "regression"), ("deeplab", "slic"))
    for method in methods.METHODS:
        if method.network:
            assert method.network in methods.networks_needed()
    assert [m.name for m in methods.METHODS if m.trained_with_labels] == ["pdd-labels"]
    assert methods.method_named("teacher").any_fixed_scan
    assert not methods.method_named("slicreg").any_fixed_scan
    assert methods.method_named("slicreg").any_pair and not methods.method_named("pdd").any_pair


def test_the_public_face_names_what_a_notebook_needs():
    for name in slicreg_lite.__all__:
        assert hasattr(slicreg_lite, name), name
    cfg, data = slicreg_lite.setup("smoke", "phantom")
    assert cfg.name == "smoke" and data.kind == "phantom"
