"""The pool and its sessions, used as a rollout would: semantics of docs/method.md §3, state
across turns, reset after failures, concurrency, recovery from a dead worker, clean shutdown."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
from PIL import Image

from codedance_core.sandbox import ExecResult, SandboxConfig, SandboxPool
from codedance_core.sandbox.pool import ExecutionSlots

from .conftest import descendants


def test_input_image_and_its_jpeg_are_preloaded(pool, gradient_image):
    code = (
        "from PIL import Image\n"
        "on_disk = Image.open('input_image.jpg')\n"
        "print(input_image.size, input_image.mode, on_disk.size, input_image.getpixel((400, 8)))\n"
    )
    result = pool.run_once(gradient_image, code)
    assert result.ok, result
    assert result.stdout == "(1024, 1024) RGB (1024, 1024) (100, 2, 51)\n"


def test_the_scientific_stack_and_the_standard_library_import(pool, gradient_image):
    code = "import numpy, cv2, scipy.ndimage, matplotlib.pyplot, glob, json, fractions, sqlite3\nprint('ok')"
    assert pool.run_once(gradient_image, code).stdout == "ok\n"


def test_state_persists_across_turns_and_resets_after_a_failure(pool, gradient_image):
    with pool.open_session(gradient_image) as session:
        assert session.execute("import numpy as np\ncount = 41").ok
        assert session.execute("count += 1\nprint(count, np.__name__)").stdout == "42 numpy\n"
        failed = session.execute("input_image = None\nraise ValueError('bad crop')")
        assert (failed.status, failed.error_type, failed.error_message, failed.error_line) == (
            "error", "ValueError", "bad crop", 2)
        assert "bad crop" in failed.traceback and "<turn" in failed.traceback
        after = session.execute("print('count' in globals(), input_image.size)")
        assert after.stdout == "False (1024, 1024)\n"  # state reset, input_image re-injected


def test_error_line_points_into_the_users_code(pool, gradient_image):
    code = "def area(box):\n    w, h = box\n    return w * h\n\narea((1, 2, 3))\n"
    result = pool.run_once(gradient_image, code)
    assert (result.error_type, result.error_line) == ("ValueError", 2)


def test_final_expression_is_shown(pool, gradient_image):
    result = pool.run_once(gradient_image, "x = 6\nx * 7")
    assert result.stdout == "42\n" and result.result_repr == "42"
    result = pool.run_once(gradient_image, "input_image.crop((0, 0, 300, 200))")
    assert [image.size for image in result.pil_images()] == [(300, 200)]
    result = pool.run_once(gradient_image, "import numpy as np\nnp.zeros((20, 30), np.float32) + 0.5")
    [image] = result.pil_images()
    assert image.size == (84, 56) and image.getpixel((0, 0)) == 127  # upscaled: shorter side 56


def test_plt_show_and_image_show_return_images(pool, gradient_image):
    code = textwrap.dedent("""\
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3], [3, 1, 2])
        plt.show()
        input_image.crop((0, 0, 4, 1000)).show()   # aspect ratio 250: dropped
        input_image.crop((0, 0, 10, 20)).show()    # small: upscaled to 56 x 112
    """)
    result = pool.run_once(gradient_image, code)
    assert result.ok, result
    sizes = [image.size for image in result.pil_images()]
    assert len(sizes) == 2 and sizes[1] == (56, 112)
    assert "aspect ratio" in result.stderr


def test_exit_ends_a_snippet_softly_and_gui_calls_raise(pool, gradient_image):
    result = pool.run_once(gradient_image, "print('before')\nimport sys\nsys.exit(3)\nprint('after')")
    assert result.ok and result.stdout == "before\n"
    result = pool.run_once(gradient_image, "import cv2\ncv2.imshow('w', __import__('numpy').zeros((4, 4)))")
    assert result.status == "error"


def test_stdout_is_capped_with_a_marker(pool, gradient_image):
    result = pool.run_once(gradient_image, "print('a' * 50_000)")
    assert result.ok and len(result.stdout) < 9000 and "truncated" in result.stdout


def test_sessions_run_concurrently_and_independently(gradient_image):
    async def scenario() -> list[ExecResult]:
        async with SandboxPool(SandboxConfig(workers=2)) as pool:
            sessions = [await pool.open_session(gradient_image) for _ in range(6)]
            await asyncio.gather(*(s.execute(f"mine = {i}") for i, s in enumerate(sessions)))
            results = await asyncio.gather(*(s.execute("print(mine)") for s in sessions))
            for session in sessions:
                await session.close()
            return results

    results = asyncio.run(scenario())
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]


def test_the_pool_replaces_a_dead_worker(gradient_image):
    async def scenario() -> tuple[ExecResult, ExecResult, ExecResult, int]:
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            session = await pool.open_session(gradient_image)
            await session.execute("kept = 1")
            running = asyncio.create_task(session.execute("import time\ntime.sleep(5)"))
            await asyncio.sleep(0.5)
            os.killpg(pool.workers[0].process.pid, signal.SIGKILL)  # the whole sandbox dies mid-call
            lost = await running
            reset = await session.execute("print('kept' in globals(), input_image.size)")
            fresh = await pool.run_once(gradient_image, "print('fresh')")
            return lost, reset, fresh, pool.respawns

    lost, reset, fresh, respawns = asyncio.run(scenario())
    assert lost.status == "killed" and respawns == 1
    assert reset.ok and reset.stdout.endswith("False (1024, 1024)\n") and "reset" in reset.stderr
    assert fresh.stdout == "fresh\n"


def test_closing_the_pool_leaves_no_process(gradient_image):
    before = {p.pid for p in descendants()}
    with SandboxPool.sync(SandboxConfig(workers=2)) as pool:
        session = pool.open_session(gradient_image)
        session.execute("import subprocess\nsubprocess.Popen(['sleep', '1000'])")
        assert len(descendants()) > len(before)
    time.sleep(0.2)
    assert {p.pid for p in descendants()} <= before


def test_a_dying_host_takes_its_sandbox_with_it(tmp_path):
    script = tmp_path / "host.py"
    script.write_text(textwrap.dedent("""\
        import os, time
        from PIL import Image
        from codedance_core.sandbox import SandboxPool
        pool = SandboxPool.sync().start()
        session = pool.open_session(Image.new("RGB", (64, 64)))
        session.execute("import subprocess\\nsubprocess.Popen(['sleep', '1000'])")
        print("ready", flush=True)
        time.sleep(1000)
    """))
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert host.stdout.readline().strip() == "ready"
    sandbox = psutil.Process(host.pid).children(recursive=True)
    assert len(sandbox) >= 5
    host.kill()
    host.wait()
    _, alive = psutil.wait_procs(sandbox, timeout=5)
    assert alive == []


def test_png_bytes_are_valid_images(pool, gradient_image):
    result = pool.run_once(gradient_image, "input_image.resize((64, 64))")
    assert Image.open(io.BytesIO(result.images[0])).format == "PNG"
    assert np.asarray(result.pil_images()[0]).shape == (64, 64, 3)


def test_every_image_mode_arrives_intact(pool):
    for image in (Image.new("L", (30, 20), 7), Image.new("RGBA", (30, 20), (1, 2, 3, 4)),
                  Image.new("P", (30, 20)), Image.new("RGB", (30, 20), (9, 8, 7))):
        result = pool.run_once(image, "print(input_image.mode, input_image.size, input_image.getpixel((3, 3)))")
        expected = image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")
        assert result.stdout == f"{expected.mode} (30, 20) {expected.getpixel((3, 3))}\n", result


def test_a_session_process_starts_at_its_first_execute_and_waits_for_a_free_slot(gradient_image):
    async def scenario() -> tuple[int, int, bool, str]:
        async with SandboxPool(SandboxConfig(workers=1, spare_processes=0, max_sessions=1)) as pool:
            first, second = await pool.open_session(gradient_image), await pool.open_session(gradient_image)
            idle = (await pool.workers[0].ping())["sessions"]  # opened, no code yet: no process
            await first.execute("x = 1")
            running = (await pool.workers[0].ping())["sessions"]
            waiting = asyncio.create_task(second.execute("print(input_image.size)"))
            await asyncio.sleep(0.3)
            blocked = not waiting.done()  # the only slot is first's
            await first.close()
            result = await waiting
            await second.close()
            return idle, running, blocked, result.stdout

    idle, running, blocked, stdout = asyncio.run(scenario())
    assert (idle, running, blocked) == (0, 1, True)
    assert stdout == "(1024, 1024)\n"


def test_concurrent_executions_follow_the_trajectories_a_rollout_serves(gradient_image):
    async def scenario() -> tuple[float, float, int, int]:
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            sessions = [await pool.open_session(gradient_image) for _ in range(4)]

            async def four_sleeps() -> float:
                started = time.monotonic()
                await asyncio.gather(*(s.execute("import time\ntime.sleep(1)") for s in sessions))
                return time.monotonic() - started

            alone = await four_sleeps()  # nothing declared: one snippet at a time (config.workers)
            with pool.serving(trajectories=4):
                limit = pool.execution_limit()
                together = await four_sleeps()
            after = pool.execution_limit()
            for session in sessions:
                await session.close()
            return alone, together, limit, after

    alone, together, limit, after = asyncio.run(scenario())
    assert (limit, after) == (4, 1)
    assert alone > 4 and together < 2.5


def test_execution_slots_change_size_while_held():
    async def scenario() -> None:
        slots = ExecutionSlots(1)
        await slots.acquire()
        second = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert not second.done()
        slots.resize(2)  # a waiter gets the new slot at once
        await asyncio.sleep(0)
        assert second.done() and slots.held == 2
        slots.resize(1)  # a lower limit takes effect as slots are released
        slots.release()
        third = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert not third.done()
        third.cancel()  # a cancelled waiter takes nothing
        await asyncio.gather(third, return_exceptions=True)
        slots.release()
        assert slots.held == 0
        await slots.acquire()
        assert slots.held == 1

    asyncio.run(scenario())
