import pytest
import yaml

from pipelines.params import ParamsError, load_params


def _write(tmp_path, data) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _raw(project) -> dict:
    return yaml.safe_load(project.read_text())


def test_the_committed_params_load(project):
    params = load_params(project)
    assert params.source_ids == ["forum", "tickets", "wiki", "essays", "scraped", "photos"]
    assert params.ledger_path == project.parent / "data" / "ledger.duckdb"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("license", "not a license!", "sources[1] 'tickets'.license"),
        ("format", "xml", "sources[1] 'tickets'.format"),
        ("retrieved_at", "2026-01-01T00:00:00", "sources[1] 'tickets'.retrieved_at"),
        ("id", "Bad Id", "sources[1] 'Bad Id'.id"),
    ],
)
def test_a_bad_source_field_is_named(project, tmp_path, field, value, message):
    raw = _raw(project)
    raw["sources"][1][field] = value
    with pytest.raises(ParamsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_params(_write(tmp_path, raw))


def test_a_missing_field_and_an_unknown_one_are_named(project, tmp_path):
    raw = _raw(project)
    del raw["sources"][0]["owner"]
    raw["ingest"]["batch_sise"] = 5
    with pytest.raises(ParamsError) as err:
        load_params(_write(tmp_path, raw))
    assert "sources[0] 'forum'.owner: Field required" in str(err.value)
    assert "ingest.batch_sise: Extra inputs are not permitted" in str(err.value)


def test_repeated_source_ids_are_refused(project, tmp_path):
    raw = _raw(project)
    raw["sources"][1]["id"] = "forum"
    with pytest.raises(ParamsError, match="repeated: \\['forum'\\]"):
        load_params(_write(tmp_path, raw))


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("sources: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")
