"""Reinforcement learning: DQN and A2C agents for gymnasium environments with discrete actions
and vector observations, evaluation, TFLite policies, explanations and episode GIFs."""

from .agent import Agent, AgentConfig, Episodes, TFLitePolicy, run_episodes
from .a2c import A2C_PRESETS, A2CAgent, A2CConfig
from .dqn import DQN_PRESETS, DQNAgent, DQNConfig, ReplayBuffer
from .envs import LONG_POLE_ID, EnvMaker, check_spaces, long_pole_cartpole

__all__ = [
    "A2C_PRESETS",
    "A2CAgent",
    "A2CConfig",
    "DQN_PRESETS",
    "LONG_POLE_ID",
    "Agent",
    "AgentConfig",
    "DQNAgent",
    "DQNConfig",
    "EnvMaker",
    "Episodes",
    "ReplayBuffer",
    "TFLitePolicy",
    "check_spaces",
    "long_pole_cartpole",
    "run_episodes",
]
