"""Rollouts of the EnvDrop agents on the batched VLN env, their losses, and one-call training iterations.

The env (``envs.gym.vector_env.VLNVectorEnv``) hands out numpy observations: ``instruction`` (B, L),
``action_mask`` (B, K+1) with STOP at action 0, and the views (B, 36, D+128) and candidates (B, K, D+128), either
as arrays (``features`` mode) or as indices that :func:`agents.observe.observe` gathers on the agent's device
(``indices`` mode, what ``agents.train`` uses); ``info["teacher_action"]`` is the next step on the shortest path
to the goal. A finished slot stays
finished until the next reset, so a rollout runs until every slot has stopped or been truncated at the env's
step limit.

What an iteration does follows EnvDrop's code (``r2r_src/agent.py``, ``train.py``):
- follower: a teacher-forced rollout (IL: summed cross-entropy / batch x ``il_weight``) and a sampled rollout
  (A2C) on two different batches, then one step of the three RMSprop optimisers (grad norm clipped to 40 on
  encoder and decoder). Each rollout is backpropagated as soon as it ends (same gradients as one summed loss,
  half the peak memory).
- A2C: returns R_t = r_t + gamma R_{t+1}, bootstrapped by the critic on the final state when the episode was
  cut off by the step limit; loss = sum over active steps of -log pi (R - V) + 0.5 (R - V)^2 - 0.01 H(pi),
  divided by the number of active steps. The reward is the env's (EnvDrop's +-2 at STOP, +-1 per move by the
  change in distance; 0 when the distance is unchanged, where EnvDrop crashes).
- back-translation: a real-data pass (IL 0.2) plus an augmented pass (IL 0.6) whose instructions the frozen
  speaker writes greedily under a fresh environmental-dropout mask per rollout, the same mask then applied to
  the follower's features (in place of feature dropout); both accumulate into one update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from agents import distributed
from agents.bleu import corpus_bleu
from agents.envdrop import apply_image_mask, draw_env_mask
from agents.follower import Follower, angle_feature
from agents.masked_lstm import take_rows
from agents.observe import observe, rows, to_device, upload
from agents.optim import Optimizer
from agents.speaker import Speaker, as_follower_instructions
from agents.step_grads import PlainLayers, StepGrads


class RolloutRandom:
    """The random choices of a training step that must not depend on how a batch is split across processes:
    the sampled actions of the A2C rollout and the environmental-dropout mask.

    Every rank holds the same generator (same seed, same draws) and draws for the whole global batch, then
    keeps the rows of its own slots (``offset`` .. ``offset + local batch``), so N processes sample exactly
    what one process does on the whole batch. A rollout draws one seed when it starts and each step's numbers
    come from (that seed, the step), so a rank whose episodes end early does not fall out of step with the
    others. (Dropout inside the model stays per process, as in DistributedDataParallel; training with dropout
    0 is bit-for-bit independent of the split.)
    """

    def __init__(self, seed: int, global_batch: int, offset: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.global_batch, self.offset = global_batch, offset
        self._rollout_seed = 0

    def start_rollout(self) -> None:
        """Draw the seed of the next rollout's per-step numbers (every rank draws the same one)."""
        self._rollout_seed = int(torch.randint(2**62, (1,), generator=self.generator))

    def uniform(self, slots: np.ndarray, step: int) -> torch.Tensor:
        """One U(0, 1) number per local slot in ``slots`` at ``step`` of the rollout, drawn for the whole
        global batch."""
        generator = torch.Generator().manual_seed(self._rollout_seed + step)
        return torch.rand(self.global_batch, generator=generator)[self.offset + slots]

    def env_mask(self, feature_dim: int, p: float, local_batch: int, per_env: bool) -> torch.Tensor:
        """An environmental-dropout mask (:func:`agents.envdrop.draw_env_mask`): shared, or this rank's rows."""
        mask = draw_env_mask(feature_dim, p, self.global_batch, per_env, generator=self.generator)
        return mask[self.offset: self.offset + local_batch] if per_env else mask

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


def sample_actions(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: for each row of ``probs`` (A, K), the first action whose cumulative probability
    exceeds that row's ``uniform`` number (A,)."""
    cumulative = probs.cumsum(dim=1)
    chosen = (cumulative < to_device(uniform, probs.device).unsqueeze(1) * cumulative[:, -1:]).sum(dim=1)
    return chosen.clamp(max=probs.shape[1] - 1)


@dataclass
class IterationConfig:
    """Loss weights and limits of one training iteration (defaults: EnvDrop / CLIP-ViL's run scripts)."""

    il_weight: float = 0.2  # teacher-forced pass weight (EnvDrop's --mlWeight in the run script)
    aug_il_weight: float = 0.6  # teacher-forced weight on the back-translation (augmented) pass
    train_rl: bool = True  # add the sampled A2C rollout (EnvDrop's --feedback sample)
    gamma: float = 0.9
    entropy_weight: float = 0.01
    critic_weight: float = 0.5
    grad_clip: float = 40.0
    env_dropout: float = 0.4  # channel drop probability of the environmental dropout mask
    env_dropout_per_env: bool = False  # paper's per-environment mask instead of the code's shared one
    max_decode: int = 120  # speaker words per generated instruction
    aug_source: str = "sampled"  # augmented pass: "sampled" paths + speaker, or "train-speaker" / "train-human"

    def __post_init__(self) -> None:
        assert self.aug_source in ("sampled", "train-speaker", "train-human"), f"unknown aug_source {self.aug_source!r}"


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _special_ids(vocab: Any) -> tuple[int, int, int]:
    """(<BOS>, <EOS>, <UNK>) ids of a ``tasks.tokenize.Vocab`` (or anything with ``word_to_index``)."""
    if hasattr(vocab, "bos_id"):
        return vocab.bos_id, vocab.eos_id, vocab.unk_id
    w2i = vocab.word_to_index
    return w2i["<BOS>"], w2i["<EOS>"], w2i["<UNK>"]


def _id_to_word(vocab: Any) -> list[str]:
    if hasattr(vocab, "words"):
        return list(vocab.words)
    return [w for w, _ in sorted(vocab.word_to_index.items(), key=lambda kv: kv[1])]


def _action_angle(obs: dict, angle_dim: int, device: torch.device, idx: np.ndarray,
                  cands: torch.Tensor | None = None, actions: torch.Tensor | None = None,
                  previous: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder's action input for env slots ``idx``: (len(idx), 128).

    EnvDrop feeds the angle feature of the agent's current heading and elevation (where the last action left
    it). When the observations lack ``heading``/``elevation``, the taken candidate's angle feature stands in
    (relative to the heading before the move), starting from the zero angle.
    """
    if "heading" in obs and "elevation" in obs:
        return angle_feature(rows(obs["heading"], idx, device), rows(obs["elevation"], idx, device), angle_dim)
    if cands is None:
        zero = torch.zeros(len(idx), device=device)
        return angle_feature(zero, zero, angle_dim)
    taken = cands[torch.arange(cands.shape[0], device=device), (actions - 1).clamp(min=0), -angle_dim:]
    return torch.where((actions > 0).unsqueeze(1), taken, previous)


def discounted_returns(rewards: torch.Tensor, bootstrap: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = r_t + gamma R_{t+1}, R_T = bootstrap: rewards (T, B), bootstrap (B,) -> returns (T, B).

    Rewards after an episode's end are 0 and its bootstrap is 0, so its returns there are 0 too.
    """
    returns = torch.empty_like(rewards)
    running = bootstrap
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def a2c_loss(log_probs: torch.Tensor, entropies: torch.Tensor, values: torch.Tensor, returns: torch.Tensor,
             masks: torch.Tensor, entropy_weight: float = 0.01, critic_weight: float = 0.5,
             total: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """EnvDrop's A2C loss over (T, B) tensors, summed over active steps and divided by their number (or by
    ``total``, e.g. :func:`agents.distributed.share` of it under torchrun)."""
    total = masks.sum().clamp(min=1.0) if total is None else torch.tensor(max(float(total), 1.0))
    advantage = (returns - values).detach()
    policy = (-log_probs * advantage * masks).sum()
    critic = ((returns - values) ** 2 * masks).sum()
    entropy = (entropies * masks).sum()
    loss = (policy + critic_weight * critic - entropy_weight * entropy) / total
    return loss, {"critic": critic.item() / total.item(), "entropy": entropy.item() / total.item(),
                  "critic_sum": critic.item(), "entropy_sum": entropy.item()}


@dataclass
class RolloutResult:
    loss: torch.Tensor | None  # weighted scalar loss of this rollout (None when nothing is trained)
    stats: dict[str, float]


def follower_rollout(follower: Follower, env: Any, obs: dict, info: dict, feedback: str, *,
                     il_weight: float | None = None, train_rl: bool = False,
                     cfg: IterationConfig = IterationConfig(), instructions: torch.Tensor | None = None,
                     env_mask: torch.Tensor | None = None, decisions: list[list[dict]] | None = None,
                     random: RolloutRandom | None = None) -> RolloutResult:
    """Run the follower from the just-reset ``obs``/``info`` until every slot has finished.

    ``feedback``: "teacher" (take the teacher's action), "sample" (sample pi; needed for ``train_rl``) or
    "argmax" (greedy, for evaluation). ``il_weight`` adds the imitation loss; ``instructions`` (B, L) replaces
    the env's (speaker-written ones); ``env_mask`` (1 or B, D) applies environmental dropout to every view and
    candidate feature instead of the per-step feature dropout. ``decisions`` (one list per slot) collects each
    decision for replays: the attention over the instruction's tokens, every valid action's probability
    (STOP and each candidate, with its viewpoint) and the action taken.

    Finished slots are dropped from the batch the model computes on (their actions are ignored by the env
    and their losses are masked in EnvDrop anyway), so a step costs in proportion to the episodes still going.
    """
    assert feedback in ("teacher", "sample", "argmax"), f"unknown feedback {feedback!r}"
    assert not train_rl or feedback == "sample", "A2C needs sampled actions (feedback='sample')"
    device, D, A = _device(follower), follower.cfg.feature_dim, follower.cfg.angle_dim
    instr = instructions if instructions is not None else upload(obs["instruction"], device)
    ctx, ctx_mask, h_tilde, c = follower.encoder(instr)
    B = instr.shape[0]
    mask_rows = env_mask
    alive = np.arange(B)  # env slots still running; every per-slot tensor below holds these rows only
    alive_t = torch.arange(B, device=device)
    prev_angle = _action_angle(obs, A, device, alive)
    il_sum = torch.zeros((), device=device)
    bootstrap = torch.zeros(B, device=device)
    hs, log_probs, entropies, rewards, step_slots = [], [], [], [], []
    steps = 0
    # when training, each decoder weight gets its gradient once per rollout instead of once per step
    layers = StepGrads() if torch.is_grad_enabled() else PlainLayers
    ctx = layers.context(ctx)  # and the word contexts theirs

    def features(o: dict, idx: np.ndarray, idx_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        views, cands, action_mask = observe(env, o, idx, device)
        if mask_rows is not None:
            m = mask_rows if mask_rows.shape[0] == 1 else mask_rows[idx_t]
            views, cands = apply_image_mask(views, m, D, inplace=True), apply_image_mask(cands, m, D, inplace=True)
        return views, cands, action_mask

    while len(alive):
        views, cands, action_mask = features(obs, alive, alive_t)
        h, c, h_tilde, cand_logits, *words = follower.decoder(prev_angle, views, cands, h_tilde, c, ctx, ctx_mask,
                                                              drop_features=env_mask is None,
                                                              return_attention=decisions is not None, layers=layers,
                                                              overwrite_features=True)
        logits = follower.action_logits(cand_logits, action_mask)  # (A, K+1)
        teacher = rows(info["teacher_action"], alive, device).long()
        if il_weight is not None:
            il_sum = il_sum + F.cross_entropy(logits, teacher, reduction="sum")
        if feedback == "teacher":
            actions = teacher
        elif feedback == "argmax":
            actions = logits.argmax(dim=1)
        else:
            log_p = torch.log_softmax(logits, dim=1)
            probs = log_p.exp()
            actions = (torch.multinomial(probs.detach(), 1).squeeze(1) if random is None
                       else sample_actions(probs.detach(), random.uniform(alive, steps)))
            log_probs.append(log_p.gather(1, actions.unsqueeze(1)).squeeze(1))
            entropies.append(-(probs * log_p.masked_fill(torch.isinf(log_p), 0.0)).sum(1))
        full = np.zeros(B, dtype=np.int64)
        # the one wait for the device per step: the env needs the chosen actions (the teacher's are known here)
        full[alive] = np.asarray(info["teacher_action"])[alive] if feedback == "teacher" else actions.cpu().numpy()
        if decisions is not None:
            _record_decisions(decisions, env, alive, words[0], instr[alive.tolist()], logits, full)
        obs, reward, terminated, truncated, info = env.step(full)
        steps += 1
        if train_rl:
            hs.append(h)
            rewards.append(rows(reward, alive, device).float())
            step_slots.append(alive_t)
        done = (np.asarray(terminated) | np.asarray(truncated))[alive]
        cut = (np.asarray(truncated) & ~np.asarray(terminated))[alive]
        new_angle = _action_angle(obs, A, device, alive, cands, actions, prev_angle)
        if train_rl and cut.any():  # the step limit cut these episodes: bootstrap R with V(final state)
            k = upload(np.flatnonzero(cut), device)
            v_views, v_cands, _ = features(obs, alive[cut], alive_t[k])
            with torch.no_grad():  # a target: no gradient flows through it
                h_last, *_ = follower.decoder(*take_rows(k, new_angle), v_views, v_cands,
                                              *take_rows(k, h_tilde, c, ctx, ctx_mask), drop_features=env_mask is None,
                                              overwrite_features=True)
                bootstrap = bootstrap.index_put((alive_t[k],), follower.critic(h_last))
        keep = np.flatnonzero(~done)
        if len(keep) < len(alive):
            k = upload(keep, device)
            alive, alive_t = alive[keep], alive_t[k]
            h_tilde, c, ctx, ctx_mask, new_angle = take_rows(k, h_tilde, c, ctx, ctx_mask, new_angle)
        prev_angle = new_angle

    loss = None
    stats: dict[str, float] = {"steps": float(steps)}
    # B, or under torchrun the global batch over the world size (collectives only when training: evaluation
    # runs on rank 0 alone)
    batch = distributed.share(B) if il_weight is not None or train_rl else B
    if il_weight is not None:
        loss = il_sum * il_weight / batch
        stats["il_loss"] = float(distributed.global_sum(il_sum.detach())) / (batch * distributed.group().world_size)
    if train_rl and rewards:
        T = len(rewards)

        def spread(values: list[torch.Tensor]) -> torch.Tensor:  # compact per-step rows -> (T, B), 0 elsewhere
            out = torch.zeros(T, B, device=device)
            return torch.stack([out[t].index_put((step_slots[t],), v) for t, v in enumerate(values)])

        R = discounted_returns(spread(rewards), bootstrap, cfg.gamma)  # (T, B)
        values = spread(list(follower.critic(torch.cat(hs)).split([len(r) for r in step_slots])))
        M = spread([torch.ones(len(r), device=device) for r in step_slots])
        rl, rl_stats = a2c_loss(spread(log_probs), spread(entropies), values, R, M,
                                cfg.entropy_weight, cfg.critic_weight, total=distributed.share(M.sum()))
        loss = rl if loss is None else loss + rl
        world, active = distributed.group().world_size, distributed.global_sum(M.sum())
        stats.update(rl_loss=float(distributed.global_sum(rl.detach())) / world, active_steps=float(active),
                     critic_loss=float(distributed.global_sum(rl_stats["critic_sum"]) / active),
                     entropy=float(distributed.global_sum(rl_stats["entropy_sum"]) / active),
                     reward=float(distributed.global_sum(torch.cat(rewards).sum())) / (batch * world))
    return RolloutResult(loss, stats)


def _record_decisions(decisions: list[list[dict]], env: Any, alive: np.ndarray, attention: torch.Tensor,
                      instr: torch.Tensor, logits: torch.Tensor, actions: np.ndarray) -> None:
    """Append one decision per running slot: attention over its real tokens, action probabilities, action."""
    probs = torch.softmax(logits, dim=1).cpu().numpy()  # (A, K+1); masked actions get 0
    lengths = (instr != 0).sum(1).tolist()  # tokens before the padding (<PAD> is 0)
    candidates = env.candidate_viewpoints()
    weights = attention.cpu().numpy()
    for j, slot in enumerate(alive.tolist()):
        decisions[slot].append({
            "attention": [round(float(w), 4) for w in weights[j, : lengths[j]]],
            "stop": round(float(probs[j, 0]), 4),
            "candidates": [{"viewpoint": vp, "score": round(float(probs[j, k + 1]), 4)}
                           for k, vp in enumerate(candidates[slot])],
            "action": int(actions[slot]),
        })


def teacher_path_features(env: Any, obs: dict, info: dict, device: torch.device | str = "cpu"
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Walk the teacher from the just-reset state to the goal, collecting the speaker's inputs.

    Returns img_feats (B, T, 36, F) (the views at each step's viewpoint), act_feats (B, T, F) (the taken
    candidate's feature, zeros at STOP) and lengths (B,) (moves + the STOP step).
    """
    device = torch.device(device)
    B = obs["action_mask"].shape[0]
    slots = np.arange(B)
    active = np.ones(B, dtype=bool)  # on the host, as the env's answers: the walk never waits for the device
    lengths = np.zeros(B, dtype=np.int64)
    imgs, acts = [], []
    every = torch.arange(B, device=device)
    while active.any():
        views, cands, _ = observe(env, obs, slots, device)
        teacher_np = np.where(active, info["teacher_action"], 0)
        teacher = upload(teacher_np, device)
        taken = cands[every, (teacher - 1).clamp(min=0)] * (teacher > 0).unsqueeze(1)  # (B, F)
        imgs.append(views)
        acts.append(taken)
        lengths += active
        obs, _, terminated, truncated, info = env.step(teacher_np)
        active &= ~(np.asarray(terminated) | np.asarray(truncated))
    return torch.stack(imgs, 1), torch.stack(acts, 1), upload(lengths, device)


def _batch_episodes(env: Any, info: dict) -> list:
    by_id = getattr(env, "_episodes_by_instr_id", None)
    if by_id is None:
        by_id = {ep.instr_id: ep for ep in env.episodes}
        env._episodes_by_instr_id = by_id  # cached on the env: one dict per split, built once
    return [by_id[i] for i in info["instr_id"]]


@torch.no_grad()
def speaker_instructions(speaker: Speaker, env: Any, obs: dict, info: dict, env_mask: torch.Tensor | None,
                         max_len: int = 120) -> torch.Tensor:
    """The frozen speaker's greedy instructions (B, L) for the current batch's paths, ready for the follower.

    Walks the env along the teacher's path (so the caller must reset again before the follower acts) and
    applies ``env_mask`` to the path features, as EnvDrop's back-translation does.
    """
    device = _device(speaker)
    was_training = speaker.training
    speaker.eval()
    img, act, lengths = teacher_path_features(env, obs, info, device)
    if env_mask is not None:
        D = speaker.cfg.feature_dim
        img, act = apply_image_mask(img, env_mask, D, inplace=True), apply_image_mask(act, env_mask, D, inplace=True)
    ctx, ctx_mask = speaker.encode(act, img, lengths, drop_features=env_mask is None)
    bos, eos, unk = _special_ids(env.vocab)
    words = speaker.decode(ctx, ctx_mask, bos, eos, banned=(unk,), max_len=max_len)
    speaker.train(was_training)
    return as_follower_instructions(words, bos, eos, env.vocab.pad_id)


def _follower_pass(follower: Follower, env: Any, il_weight: float, cfg: IterationConfig,
                   speaker: Speaker | None = None, sampler: Any = None, prefix: str = "",
                   random: RolloutRandom | None = None, env_dropout: bool = False) -> dict[str, float]:
    """Teacher-forced rollout + (optionally) sampled A2C rollout, each on a fresh batch, backpropagated.

    Batches come from the env's own sampler, or from ``sampler`` (``next_batch()``: e.g. augmented paths)
    played in ``env``. With ``env_dropout`` one environmental-dropout mask per rollout replaces feature
    dropout; with ``speaker`` the speaker writes the instructions (under that mask).
    """
    stats: dict[str, float] = {}
    runs = [("teacher", il_weight, False)] + ([("sample", None, True)] if cfg.train_rl else [])
    for feedback, weight, rl in runs:
        if random is not None:
            random.start_rollout()
        batch = sampler.next_batch() if sampler is not None else None
        obs, info = env.reset(options=None if batch is None else {"episodes": batch})
        instructions = env_mask = None
        if env_dropout:
            local = obs["action_mask"].shape[0]
            env_mask = (draw_env_mask(follower.cfg.feature_dim, cfg.env_dropout, local, cfg.env_dropout_per_env,
                                      _device(follower)) if random is None else
                        random.env_mask(follower.cfg.feature_dim, cfg.env_dropout, local,
                                        cfg.env_dropout_per_env).to(_device(follower)))
        if speaker is not None:
            episodes = batch if batch is not None else _batch_episodes(env, info)
            instructions = speaker_instructions(speaker, env, obs, info, env_mask, cfg.max_decode)
            obs, info = env.reset(options={"episodes": episodes})
        result = follower_rollout(follower, env, obs, info, feedback, il_weight=weight, train_rl=rl, cfg=cfg,
                                  instructions=instructions, env_mask=env_mask, random=random)
        if result.loss is not None:
            result.loss.backward()
        stats.update({f"{prefix}{feedback}/{k}": v for k, v in result.stats.items()})
    return stats


def _step_optimizers(modules: dict[str, torch.nn.Module], optimizers: dict[str, Optimizer],
                     clip: float, clipped: tuple[str, ...]) -> dict[str, float]:
    distributed.average_gradients(*modules.values())  # under torchrun: every rank gets the batch's gradient
    norms = {f"grad_norm/{n}": float(torch.nn.utils.clip_grad_norm_(modules[n].parameters(), clip))
             for n in clipped}
    for opt in optimizers.values():
        opt.step()
    return norms


def train_follower_iteration(follower: Follower, optimizers: dict[str, Optimizer], env: Any,
                             cfg: IterationConfig = IterationConfig(),
                             random: RolloutRandom | None = None) -> dict[str, float]:
    """One EnvDrop follower update: IL rollout + A2C rollout on two batches, one optimiser step."""
    follower.train()
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    stats = _follower_pass(follower, env, cfg.il_weight, cfg, random=random)
    parts = {"encoder": follower.encoder, "decoder": follower.decoder, "critic": follower.critic}
    stats.update(_step_optimizers(parts, optimizers, cfg.grad_clip, ("encoder", "decoder")))
    return stats


def backtranslation_iteration(follower: Follower, optimizers: dict[str, Optimizer],
                              speaker: Speaker, env: Any, aug_sampler: Any,
                              cfg: IterationConfig = IterationConfig(),
                              random: RolloutRandom | None = None) -> dict[str, float]:
    """One back-translation update: a real-data pass and an augmented pass (speaker-written, env-dropped).

    The augmented pass plays ``aug_sampler``'s batches (new paths in the training houses) in ``env``; with
    ``cfg.aug_source`` "train-speaker" it plays training batches instead, and with "train-human" those keep
    their human instructions (the speaker is not used): controls that tell the speaker's part from the pass's.
    """
    follower.train()
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    stats = _follower_pass(follower, env, cfg.il_weight, cfg, prefix="real/", random=random)
    stats.update(_follower_pass(follower, env, cfg.aug_il_weight, cfg,
                                speaker=None if cfg.aug_source == "train-human" else speaker,
                                sampler=aug_sampler if cfg.aug_source == "sampled" else None,
                                prefix="aug/", random=random, env_dropout=True))
    parts = {"encoder": follower.encoder, "decoder": follower.decoder, "critic": follower.critic}
    stats.update(_step_optimizers(parts, optimizers, cfg.grad_clip, ("encoder", "decoder")))
    return stats


def train_speaker_iteration(speaker: Speaker, optimizers: dict[str, Optimizer], env: Any,
                            grad_clip: float = 40.0) -> dict[str, float]:
    """One speaker update: teacher-forced cross-entropy on a fresh batch's teacher paths."""
    speaker.train()
    obs, info = env.reset()
    device = _device(speaker)
    instr = upload(obs["instruction"], device)
    img, act, lengths = teacher_path_features(env, obs, info, device)
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    words = float((instr[:, 1:] != speaker.cfg.pad_id).sum())  # the targets: every word after <BOS>
    loss = speaker.loss(instr, *speaker.encode(act, img, lengths), total_words=distributed.share(words))
    loss.backward()
    stats = {"speaker/loss": float(distributed.global_sum(loss.detach())) / distributed.group().world_size}
    stats.update(_step_optimizers({"encoder": speaker.encoder, "decoder": speaker.decoder}, optimizers,
                                  grad_clip, ("encoder", "decoder")))
    return stats


@torch.no_grad()
def evaluate_follower(follower: Follower, env: Any, details: bool = False,
                      speaker: Speaker | None = None) -> list[dict]:
    """Greedy rollouts over every episode of the env's split once: results entries {instr_id, trajectory}.

    With ``details`` each entry also carries what a replay shows (the extended results format of
    :mod:`eval.replay`): ``instruction_tokens`` and one ``decisions`` record per decision, with ``at`` (the
    trajectory entry where it was taken), ``attention`` (over the tokens), ``stop`` and ``candidates``
    (each action's probability) and ``action`` (0 = STOP, k = candidate k).

    With ``speaker`` the follower acts on the speaker's greedy instructions for each path instead of the
    human ones: how well what the speaker writes (back-translation's training data) can be followed.
    """
    assert not (details and speaker is not None), "details record the human instructions' tokens: not with a speaker"
    was_training = follower.training
    follower.eval()
    results: dict[str, dict] = {}
    words = _id_to_word(env.vocab) if details else []
    for options in env.iter_batches():
        obs, info = env.reset(options=options)
        decisions: list[list[dict]] | None = [[] for _ in range(env.num_envs)] if details else None
        instructions = None
        if speaker is not None:
            instructions = speaker_instructions(speaker, env, obs, info, None)
            obs, info = env.reset(options=options)  # the speaker walked the paths: start the same batch again
        follower_rollout(follower, env, obs, info, "argmax", decisions=decisions, instructions=instructions)
        for slot, entry in enumerate(env.results()):
            if entry["instr_id"] in results:  # the last batch is padded with repeats
                continue
            if decisions is not None:
                ids = obs["instruction"][slot]
                entry["instruction_tokens"] = [words[int(i)] for i in ids[ids != 0]]
                arrivals = arrival_indices(entry["trajectory"])
                entry["decisions"] = [{"at": at, **d} for at, d in zip(arrivals, decisions[slot])]
            results[entry["instr_id"]] = entry
    follower.train(was_training)
    return list(results.values())


def arrival_indices(trajectory: list[list]) -> list[int]:
    """Indices of the trajectory entries where the agent arrived somewhere (the start, then every move): the
    follower decides there (turns in place between them are the way to its chosen candidate)."""
    return [0] + [i for i in range(1, len(trajectory)) if trajectory[i][0] != trajectory[i - 1][0]]


@torch.no_grad()
def evaluate_speaker(speaker: Speaker, env: Any, tokenize: Callable[[str], list[str]] | None = None,
                     max_len: int = 120) -> dict[str, Any]:
    """Greedy instructions for every path of the split, scored by corpus BLEU-4 against all its instructions.

    ``tokenize`` splits a reference instruction into words (default: the vocabulary's own splitter, EnvDrop's
    ``split_sentence`` for R2R). Returns ``bleu``, ``precisions`` and ``instructions`` (path_id -> words).
    """
    tokenize = tokenize or env.vocab.split
    itos = _id_to_word(env.vocab)
    _, eos, _ = _special_ids(env.vocab)
    generated: dict[Any, list[str]] = {}
    for options in env.iter_batches():
        obs, info = env.reset(options=options)
        words = speaker_instructions(speaker, env, obs, info, None, max_len)[:, 1:].cpu().numpy()
        for ep, ids in zip(_batch_episodes(env, info), words):
            if ep.path_id not in generated:
                ids = list(ids)
                generated[ep.path_id] = [itos[int(i)] for i in ids[: ids.index(eos) if eos in ids else len(ids)]]
    refs: dict[Any, list[list[str]]] = {}
    for ep in env.episodes:
        refs.setdefault(ep.path_id, []).append(tokenize(ep.instruction))
    keys = list(generated)
    score = corpus_bleu([refs[k] for k in keys], [generated[k] for k in keys])
    return {"bleu": score.bleu, "precisions": list(score.precisions), "instructions": generated}
