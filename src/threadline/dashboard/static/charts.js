// Draws every [data-chart] element from the JSON script named by its data-chart attribute.
// Spec: {kind: "lines" | "bars", x: [...], time: bool, xLabel, yLabel, xTicks?: [...],
//        series: [{label, values: [...]}]}. Lines over time take x in Unix seconds; bars take
// 1-based bin numbers, named on the axis by xTicks when given, and start at zero. Once drawn, the element gets data-rendered="true" (the browser tests
// look for it).
(function () {
  "use strict";
  var COLORS = ["#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700"];

  function seriesOptions(spec) {
    var bars = spec.kind === "bars";
    var count = spec.series.length;
    return spec.series.map(function (s, i) {
      var color = COLORS[i % COLORS.length];
      var options = { label: s.label, stroke: color, width: 2, spanGaps: false };
      if (bars) {
        var size = 0.9 / count;
        options.fill = color + "99";
        options.paths = uPlot.paths.bars({ size: [size], align: count === 1 ? 0 : (i === 0 ? -1 : 1) });
        options.points = { show: false };
      }
      return options;
    });
  }

  function draw(element) {
    var source = document.getElementById(element.getAttribute("data-chart"));
    var spec = JSON.parse(source.textContent);
    var width = Math.max(element.clientWidth, 320);
    var options = {
      width: width,
      height: spec.height || 220,
      scales: { x: { time: spec.kind === "lines" && spec.time !== false } },
      axes: [{ label: spec.xLabel || "" }, { label: spec.yLabel || "" }],
      series: [{ label: spec.xLabel || "x" }].concat(seriesOptions(spec)),
      legend: { show: true },
    };
    if (spec.kind === "lines") {
      // One window (or windows all at one time) would leave uPlot to guess a span of years.
      options.scales.x.range = function (u, min, max) {
        return min === max ? [min - 60, max + 60] : [min, max];
      };
    }
    if (spec.kind === "bars") {
      options.scales.y = { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } };
      options.scales.x.range = function (u, min, max) { return [min - 0.5, max + 0.5]; };
      if (spec.xTicks) {
        options.axes[0].values = function (u, splits) {
          return splits.map(function (v) { return Number.isInteger(v) ? (spec.xTicks[v - 1] || "") : ""; });
        };
      }
    }
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var plot = new uPlot(options, data, element);
    element.setAttribute("data-rendered", "true");
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(element.clientWidth, 320), height: options.height });
    });
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
