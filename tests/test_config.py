from foundation.config import Settings, load_settings, save_settings


def test_precedence_file_env_overrides(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('top_k = 3\nretrieval_mode = "bm25"\nchunk_tokens = 150\n')
    monkeypatch.setenv("PAPER_ASSISTANT_TOP_K", "5")
    s = load_settings(cfg, home=tmp_path, chunk_tokens=None)
    assert s.top_k == 5  # env beats the file
    assert s.retrieval_mode == "bm25"  # file beats defaults
    assert s.chunk_tokens == 150  # a None override leaves the value alone
    assert load_settings(cfg, home=tmp_path, top_k=9).top_k == 9  # explicit beats env


def test_unknown_keys_are_refused(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("top_kk = 3\n")
    import pytest

    with pytest.raises(Exception, match="top_kk"):
        load_settings(cfg, home=tmp_path)


def test_save_settings_round_trip(tmp_path):
    s = Settings(home=tmp_path, hyde=True, retrieval_mode="hybrid")
    path = save_settings(s, ["hyde", "retrieval_mode", "fusion_weights"], tmp_path / "config.toml")
    again = load_settings(path, home=tmp_path)
    assert again.hyde is True and again.retrieval_mode == "hybrid" and again.fusion_weights == s.fusion_weights
