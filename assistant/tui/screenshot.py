"""Regenerate docs/tui.svg: the TUI answering a real question on the real index, citation panel open.

    PAPER_ASSISTANT_HOME=/path/to/home .venv/bin/python -m assistant.tui.screenshot \
        --llm-url http://127.0.0.1:8800/v1 --llm-model qwen2.5-coder-0.5b-instruct
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from textual.widgets import Input
from textual.worker import WorkerFailed

from foundation.config import load_settings
from assistant.tui import create_app

QUESTION = "How does PagedAttention manage the KV cache in vLLM?"


async def main(args) -> None:
    settings = load_settings(llm_base_url=args.llm_url, llm_model=args.llm_model)
    app = create_app(settings=settings)
    async with app.run_test(size=(args.width, args.height)) as pilot:
        async def settle(rounds: int = 3) -> None:
            for _ in range(rounds):
                await pilot.pause()
                try:
                    await app.workers.wait_for_complete()
                except WorkerFailed:
                    pass
            await pilot.pause()

        await settle()
        app.main_screen.query_one("#question", Input).value = args.question
        await pilot.press("enter")
        await settle(5)
        turn = app.conversation.turns[-1]
        print(turn.state, turn.text, sep="\n")
        if turn.answer and turn.answer.citations:
            app.open_citation(len(app.conversation.turns) - 1, turn.answer.citations[0].n)
        app.clear_notifications()
        await settle()
        out = Path(args.out)
        app.save_screenshot(filename=out.name, path=str(out.parent))
        print("wrote", out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--llm-url")
    p.add_argument("--llm-model")
    p.add_argument("--question", default=QUESTION)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "docs" / "tui.svg"))
    p.add_argument("--width", type=int, default=130)
    p.add_argument("--height", type=int, default=38)
    asyncio.run(main(p.parse_args()))
