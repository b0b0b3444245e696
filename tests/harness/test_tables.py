"""The project's table writers: markdown and aligned text, checked against tables written out by hand."""

import pytest

from fitnets_tf.harness.tables import markdown_table, text_table


def test_markdown_table_is_github_markdown():
    table = markdown_table(["model", "mults"], [["fitnet1", "30.2M"], ["teacher", 628]])
    assert table == ("| model | mults |\n"
                     "|---|---|\n"
                     "| fitnet1 | 30.2M |\n"
                     "| teacher | 628 |")


def test_markdown_table_aligns_columns_and_escapes_pipes():
    table = markdown_table(("a", "b", "c", "d"), [("x|y", "", 1.5, None)], align=["l", "c", "r", None])
    assert table.splitlines() == ["| a | b | c | d |", "|:---|:---:|---:|---|", "| x\\|y |  | 1.5 | None |"]
    assert markdown_table(["a", "b"], [], align=[None, "r"]) == "| a | b |\n|---|---:|"


def test_markdown_table_refuses_ragged_rows_and_bad_alignments():
    with pytest.raises(ValueError, match="each row must have 2 cells"):
        markdown_table(["a", "b"], [["1"]])
    with pytest.raises(ValueError, match="align must give one of"):
        markdown_table(["a", "b"], [], align="l")
    with pytest.raises(ValueError, match="align must give one of"):
        markdown_table(["a"], [], align="x")


def test_text_table_pads_columns_to_their_widest_cell():
    table = text_table(["candidate", "ms"], [["ce/xla_off", 29.9], ["kd", ""]])
    assert table == ("candidate   ms\n"
                     "----------  ----\n"
                     "ce/xla_off  29.9\n"
                     "kd")  # trailing spaces stripped
    with pytest.raises(ValueError, match="each row must have 2 cells"):
        text_table(["a", "b"], [["1", "2", "3"]])
