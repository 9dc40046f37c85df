// barksite's only script: a character counter, the new-job form's voices per engine, live job progress, and
// play buttons. Every page works without it; it only makes them livelier (the server checks everything again).
"use strict";

function setUpCounters() {
  document.querySelectorAll("[data-counter-for]").forEach((counter) => {
    const field = document.getElementById(counter.dataset.counterFor);
    const count = counter.querySelector("[data-count]");
    if (!field || !count) return;
    const limit = Number(field.dataset.maxChars || field.maxLength);
    const update = () => {
      count.textContent = field.value.length;
      counter.classList.toggle("near-limit", field.value.length > limit * 0.9);
    };
    field.addEventListener("input", update);
    update();
  });
}

// The new-job form: offer only the voices of the engine that will run (the chosen one, or Automatic's pick)
// and say when Piper ignores the temperatures.
function setUpEngineVoices() {
  const engine = document.getElementById("id_engine");
  const voice = document.getElementById("id_voice");
  const seed = document.getElementById("id_seed");
  const note = document.querySelector("[data-temperature-ignored]");
  if (!engine || !voice) return;
  const update = () => {
    const runs = engine.value === "auto" ? engine.dataset.autoEngine : engine.value;
    voice.querySelectorAll("option[data-engine]").forEach((option) => {
      const other = option.dataset.engine !== runs;
      option.hidden = other;
      option.disabled = other;
      if (other && option.selected) voice.value = "";
    });
    voice.querySelectorAll("optgroup").forEach((group) => {
      group.hidden = !group.querySelector("option:not([hidden])");
    });
    if (note && seed) note.hidden = !(runs === "piper" && seed.value.trim() !== "");
  };
  engine.addEventListener("change", update);
  if (seed) seed.addEventListener("input", update);
  update();
}

// Poll the job's status every second while it waits or runs; reload once it finishes, so the players,
// downloads and buttons come from the server exactly as on a fresh visit.
function setUpJobPolling() {
  const card = document.querySelector("[data-status-url]");
  if (!card || card.dataset.finished === "true") return;
  const label = card.querySelector("[data-job-label]");
  const summary = card.querySelector("[data-job-summary]");
  const bar = card.querySelector("[data-job-progress]");
  const percent = card.querySelector("[data-job-percent]");
  const segments = card.querySelector("[data-job-segments]");
  let failures = 0;

  const poll = async () => {
    try {
      const response = await fetch(card.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      const state = await response.json();
      failures = 0;
      label.textContent = state.label;
      label.className = "badge status-" + state.status;
      summary.textContent = state.summary;
      bar.value = state.percent;
      bar.textContent = state.percent + "%";
      percent.textContent = state.percent;
      if (state.segments_total) segments.textContent = state.segments_done + " of " + state.segments_total;
      if (state.finished) {
        window.location.reload();
        return;
      }
    } catch (error) {
      failures += 1; // a restarting server: keep trying for a while, then leave the page as it is
      if (failures > 30) return;
    }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
}

// The jobs list: one shared <audio> element behind every row's play button.
function setUpPlayButtons() {
  const buttons = document.querySelectorAll("a[data-play]");
  if (!buttons.length) return;
  const audio = new Audio();
  let current = null;
  const show = (button, playing) => {
    button.classList.toggle("playing", playing);
    button.setAttribute("aria-pressed", String(playing));
    button.querySelector("span").textContent = playing ? "❚❚" : "▶";
  };
  audio.addEventListener("ended", () => current && show(current, false));
  audio.addEventListener("pause", () => current && show(current, false));
  audio.addEventListener("play", () => current && show(current, true));
  buttons.forEach((button) => {
    button.setAttribute("role", "button");
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("keydown", (event) => {
      if (event.key === " ") {
        event.preventDefault();
        button.click();
      }
    });
    button.addEventListener("click", (event) => {
      event.preventDefault();
      if (current === button && !audio.paused) {
        audio.pause();
        return;
      }
      if (current && current !== button) show(current, false);
      current = button;
      audio.src = button.href;
      audio.play().catch(() => show(button, false));
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setUpCounters();
  setUpEngineVoices();
  setUpJobPolling();
  setUpPlayButtons();
});
