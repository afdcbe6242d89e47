"""Every TensorDict key used by the toolkit, defined once, with dtype, shape and timing.

Alignment rule (the one place it is written; ``worldmodels/data/rows.py`` enforces it,
``tests/test_keys.py`` checks collected data against it). A stored sequence is a list of *rows*, one per
observation. Row ``t`` holds:

* ``pixels[t]``      the observation o_t (and ``proprio[t]``, its vector form, when the env emits it),
* ``reward[t]``      the reward received on *arriving* at o_t (0 where ``is_first[t]``),
* ``is_terminal[t]`` whether o_t is a true terminal state (False where ``is_first[t]``),
* ``is_last[t]``     whether o_t is the last observation of its episode (terminal or time limit),
* ``action[t]``      the action *taken at* o_t (what a policy outputs; zeros on the last row,
                     where no action was taken) -- the torchrl / dreamerv3 meaning,
* ``prev_action[t]`` the action that *led to* o_t, i.e. ``action[t-1]`` (zeros where
                     ``is_first[t]``) -- the pydreamer / dreamerv3-torch meaning.

So an episode with T transitions o_0 -a_0-> o_1 ... -a_{T-1}-> o_T is stored as T+1 rows.
World models consume ``prev_action`` (the RSSM step p(s_t | s_{t-1}, a_{t-1}) needs the action
that led to t); policies produce ``action``. torchrl's ``("next", ...)`` layout is flattened
into rows exactly once, in ``worldmodels/data/rows.py``; model code never sees ``"next"``.

Per-step scalars keep a trailing 1 (``[B, T, 1]``) like torchrl specs, so ``[B,T] - [B,T,1]``
broadcasting cannot happen silently.
"""

# --- data rows (env -> replay -> model) ---------------------------------------------
PIXELS = "pixels"  # uint8 [B,T,C,H,W]; C=3 for DMC
ACTION = "action"  # float32 [B,T,A] in [-1,1]; the action taken at row t
PREV_ACTION = "prev_action"  # float32 [B,T,A]; the action that led to row t (zeros at is_first)
REWARD = "reward"  # float32 [B,T,1]; received on arriving at row t (0 at is_first)
IS_FIRST = "is_first"  # bool [B,T,1]; row t starts an episode (model state resets here)
IS_TERMINAL = "is_terminal"  # bool [B,T,1]; true end of the episode (not a time limit)
IS_LAST = "is_last"  # bool [B,T,1]; last row of an episode (terminal or truncated)
STATE = "state"  # float32 [B,T,S]; true simulator state (physics.get_state(): qpos, qvel, act), for success and probes
# float32 [B,T,P]; the DMC observation vector (its observation dict flattened in spec order), the model
# input of env.observation proprio / both (STATE stays the simulator state, for success measures)
PROPRIO = "proprio"
GOAL_PIXELS = "goal_pixels"  # uint8 [B,C,H,W] (or [B,T,C,H,W] inside goal-task rollouts)
GOAL_STATE = "goal_state"  # float32 [B,S_goal]; true state of the goal, for success measures
SUCCESS = "success"  # bool [B,T,1]; goal tasks: success measured from the true state
EPISODE = "episode"  # int64 [B,T]; id of the row's episode in its store (replay: replay-wide id; dataset: position)

# --- torchrl env boundary (env.step / collectors); flattened into rows by data/rows.py ---
NEXT = "next"
DONE = "done"  # bool [...,1]; torchrl: terminated or truncated
TERMINATED = "terminated"  # bool [...,1]; torchrl: true terminal
TRUNCATED = "truncated"  # bool [...,1]; torchrl: time limit

# --- model states --------------------------------------------------------------------
DETER = "deter"  # float32 [..., D]; RSSM deterministic (GRU) state h_t
STOCH = "stoch"  # float32 [..., S] (Gaussian) or [..., C, K] one-hot (categorical) z_t
MEAN = "mean"  # float32 [..., S]; Gaussian stochastic-state mean
STD = "std"  # float32 [..., S]; Gaussian stochastic-state std
LOGITS = "logits"  # float32 [..., C, K]; categorical stochastic-state logits
LATENT = "latent"  # float32 [..., Z]; JEPA (PLDM) representation
# uint8 [..., k-1, C, H, W]; PLDM with model.frame_stack = k > 1: the episode's last k-1 frames (oldest first)
# up to and including this row, carried in the state so that the next observe can stack k frames
FRAMES = "frames"
