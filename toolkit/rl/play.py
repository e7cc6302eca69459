"""Watch a policy play: episodes rendered with ``render_mode="rgb_array"``, downscaled, captioned
(step, action, return) and written as an animated GIF with PIL.

One palette, made from the first frame, serves every frame (quantizing each frame on its own
costs about 4x more): a 500-step CartPole episode at half size takes about 2 s and 1-2 MB.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError
from ..storage import atomic_write
from .envs import EnvMaker


def _font():
    from PIL import ImageFont

    global _FONT
    if _FONT is None:
        _FONT = ImageFont.load_default_imagefont()  # a bitmap font: 20x faster to draw than FreeType
    return _FONT


_FONT = None


def render_frame(frame: np.ndarray, scale: float = 0.5, caption: str = ""):
    """A rendered frame as a downscaled RGB PIL image with a caption strip on top."""
    from PIL import Image, ImageDraw

    frame = np.asarray(frame, dtype=np.uint8)
    factor = 1 / scale
    if abs(factor - round(factor)) < 1e-6:  # an integer factor: keep every n-th pixel (fast, crisp lines)
        frame = frame[:: round(factor), :: round(factor)]
        image = Image.fromarray(np.ascontiguousarray(frame))
    else:
        image = Image.fromarray(frame)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.NEAREST)
    if caption:
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, image.width, 12), fill=(255, 255, 255))
        draw.text((3, 1), caption, fill=(0, 0, 0), font=_font())
    return image


def write_gif(frames: list, out: str | os.PathLike, fps: float = 50) -> Path:
    """Write PIL RGB images as a looping GIF, atomically, with one palette for all frames."""
    from PIL import Image

    if not frames:
        raise DataError("No frames to write: the episode produced no rendered frames.")
    palette = frames[0].quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    indexed = [palette] + [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames[1:]]
    duration = max(20, int(round(1000 / fps)))  # browsers slow down delays under 20 ms

    def save(tmp: str) -> None:
        indexed[0].save(tmp, format="GIF", save_all=True, append_images=indexed[1:], duration=duration, loop=0,
                        optimize=False)

    return atomic_write(out, save)


def record(act: Callable[[np.ndarray], np.ndarray], maker: EnvMaker, out: str | os.PathLike | None,
           n_episodes: int = 1, seed: int = 0, action_names: list[str] | None = None, scale: float = 0.5,
           every: int = 1, fps: float | None = None) -> dict:
    """Play ``n_episodes`` episodes with ``act(obs batch) -> actions`` (episode k starts from
    ``reset(seed=seed + k)``, as in evaluation) and write every ``every``-th frame to ``out``
    (a ``.gif``; None: no file, the frames are returned). Returns the returns, lengths, frames
    written, seconds and file size."""
    n_episodes, every = int(n_episodes), int(every)
    if n_episodes < 1 or every < 1:
        raise ValueError(f"n_episodes and every must be >= 1. Received n_episodes={n_episodes}, every={every}.")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1]. Received {scale}.")
    if out is not None and Path(out).suffix.lower() != ".gif":
        raise DataError(f"Expected an output file ending in .gif. Received {str(out)!r}.")
    started = time.perf_counter()
    env = maker.make(render_mode="rgb_array")
    fps = fps or float(env.metadata.get("render_fps") or 30)
    frames, returns, lengths = [], [], []
    try:
        for k in range(n_episodes):
            obs, _ = env.reset(seed=seed + k)
            total, step, done = 0.0, 0, False
            frame = env.render()
            if frame is None:
                raise DataError(f"{maker.name} rendered no image: it does not support render_mode='rgb_array'.")
            frames.append(render_frame(frame, scale, f"episode {k + 1}  step 0"))
            while not done:
                action = int(np.asarray(act(np.asarray(obs, np.float32)[None])).reshape(-1)[0])
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                step += 1
                done = terminated or truncated
                if step % every == 0 or done:
                    name = action_names[action] if action_names else str(action)
                    frames.append(render_frame(env.render(), scale,
                                               f"episode {k + 1}  step {step}  {name}  return {total:g}"))
            returns.append(total)
            lengths.append(step)
    finally:
        maker.release([env])
    result = {"returns": returns, "lengths": lengths, "frames": len(frames)}
    if out is not None:
        path = write_gif(frames, out, fps / every)
        result.update(out=str(path), size_bytes=path.stat().st_size)
    else:
        result["images"] = frames
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def play_saved(model_dir: str | os.PathLike, out: str | os.PathLike | None, n_episodes: int = 1,
               seed: int | None = None, env=None, tflite: str | os.PathLike | None = None, **kwargs) -> dict:
    """Render episodes of a saved agent without TensorFlow (what ``toolkit play`` runs): its
    greedy policy read from ``model.keras`` into the numpy forward pass it acts with (the same
    actions as ``load(model_dir).play(...)``), or a policy ``.tflite`` file run by LiteRT. The
    environment, seeds and action names come from the agent's card."""
    from ..errors import ModelFormatError
    from ..registry import ALIASES, TASKS
    from ..storage import read_card
    from .envs import maker_with_spaces
    from .episodes import TEST_SEED_OFFSET
    from .lite import TFLitePolicy

    card = read_card(model_dir)
    cls = TASKS.get(ALIASES.get(card.get("task"), card.get("task")))  # importing toolkit.rl registered the agents
    if not (isinstance(cls, type) and "policy" in cls.tags) or not card.get("env"):
        raise ModelFormatError(f"`toolkit play` needs an RL agent (`toolkit train rl`); {model_dir} holds a "
                               f"{card.get('task')!r} model.")
    if tflite is None:
        act = cls.greedy_from_folder(model_dir, card)
    else:
        path = Path(tflite)
        if not path.is_absolute() and not path.exists():
            path = Path(model_dir) / tflite
        act = TFLitePolicy(path, card={}).predict
    if env is None and not card["env"].get("id"):
        raise DataError("The agent's card names no registered environment to play in. Pass env=... (--env).")
    maker = (EnvMaker(card["env"]) if env is None else
             maker_with_spaces(env, card["input"]["shape"][0], card["output"]["shape"][0], card["env"]["name"]))
    seed = int(card.get("config", {}).get("seed", 0)) + TEST_SEED_OFFSET if seed is None else int(seed)
    return record(act, maker, out, n_episodes, seed, action_names=card["output"]["actions"], **kwargs)
