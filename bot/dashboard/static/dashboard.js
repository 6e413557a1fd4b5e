// The supervisors' dashboard: reads /dashboard/data and draws five Chart.js charts.
"use strict";
(function () {
  const labels = JSON.parse(document.getElementById("labels").textContent);
  const status = document.getElementById("status");
  const days = document.getElementById("days");
  const colors = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"];
  const charts = [];
  // Canvases must be painted at once for screenshots and pixel checks: no animation.
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;

  function draw(id, config) {
    charts.push(new Chart(document.getElementById(id), config));
  }

  function render(data) {
    charts.splice(0).forEach((c) => c.destroy());
    const statuses = Object.keys(data.open_by_status);
    draw("chart-open", {
      type: "bar",
      data: {
        labels: statuses.map((s) => labels.status[s] || s),
        datasets: [{ label: labels.cases, data: statuses.map((s) => data.open_by_status[s]), backgroundColor: colors }],
      },
      options: { plugins: { legend: { display: false } } },
    });
    draw("chart-missed", {
      type: "bar",
      data: {
        labels: data.days,
        datasets: ["review", "credit"].map((d, i) => ({
          label: labels.missed[d], data: data.missed[d], backgroundColor: colors[i + 1],
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    });
    draw("chart-refunds", {
      type: "bar",
      data: {
        labels: data.days,
        datasets: Object.keys(data.refunded).map((ch, i) => ({
          label: labels.channel[ch] || ch, data: data.refunded[ch].map(Number), backgroundColor: colors[i],
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    });
    draw("chart-csat", {
      type: "line",
      data: {
        labels: data.days,
        datasets: [
          { label: labels.csat_average, data: data.rating_average, borderColor: colors[3], backgroundColor: colors[3],
            spanGaps: true, yAxisID: "y" },
          { type: "bar", label: labels.csat_count, data: data.rating_counts, backgroundColor: "#c9d6ef", yAxisID: "y1" },
        ],
      },
      options: { scales: { y: { min: 0, max: 5 }, y1: { position: "right", beginAtZero: true, ticks: { precision: 0 },
                                                       grid: { drawOnChartArea: false } } } },
    });
    draw("chart-agents", {
      type: "bar",
      data: {
        labels: data.agents.map((a) => a.name),
        datasets: ["taken", "decided", "open"].map((k, i) => ({
          label: labels.agents[k], data: data.agents.map((a) => a[k]), backgroundColor: colors[i + 4],
        })),
      },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    status.textContent = "";
    document.body.dataset.drawn = String(charts.length);
  }

  async function load() {
    status.textContent = labels.loading;
    const query = new URLSearchParams({ days: days.value, lang: document.documentElement.lang });
    const response = await fetch("/dashboard/data?" + query, { credentials: "same-origin" });
    if (response.status === 401) {
      status.textContent = labels.signed_out;
      window.location.assign("/dashboard?lang=" + encodeURIComponent(document.documentElement.lang));
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status.textContent = body.error || labels.load_failed;
      return;
    }
    render(await response.json());
  }

  days.addEventListener("change", () => load().catch(() => { status.textContent = labels.load_failed; }));
  load().catch(() => { status.textContent = labels.load_failed; });
})();
