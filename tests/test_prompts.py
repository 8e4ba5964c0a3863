import pytest

from assistant.engine.passages import answer_messages
from assistant.core.config import PROJECT_ROOT, Settings
from assistant.core.prompts import PromptError, load_prompt
from tests.test_cite import PASSAGES


def test_answer_prompts_render_with_the_fields_the_code_passes(tmp_path):
    messages = answer_messages("Why scale dot products?", PASSAGES, Settings(home=tmp_path))
    assert messages[0]["role"] == "system" and "[n]" in messages[0]["content"]
    assert "[1] Attention Is All You Need (1706.03762)" in messages[1]["content"]
    assert "Why scale dot products?" in messages[1]["content"]


def test_a_renamed_placeholder_fails_loudly(tmp_path):
    (tmp_path / "p.txt").write_text("Hello {name}")
    with pytest.raises(PromptError, match="missing fields \\['name'\\]"):
        load_prompt("p", tmp_path).render(nme="x")


def test_every_prompt_file_parses():
    for path in (PROJECT_ROOT / "prompts").glob("*.txt"):
        prompt = load_prompt(path.stem, path.parent)
        assert prompt.template.strip(), path
        prompt.render(**{f: "x" for f in prompt.fields})
