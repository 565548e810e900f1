/* panoptes launcher pages. Hand-written, no dependencies; the pages work without it.
 *
 * - A launch's page follows its log: server-sent events from <pre data-log-stream>, resuming
 *   from the offset the page was rendered with; the status badge follows, the run's link
 *   appears once the run reports; when the launch ends the page reloads once to show its
 *   final state.
 * - The launch form, for a Nextflow pipeline with a nextflow_schema.json, shows one field per
 *   parameter; on submit the fields are merged into the JSON parameters.
 */
(function () {
  "use strict";

  function followLog() {
    var pre = document.getElementById("launch-log");
    if (!pre || !pre.getAttribute("data-log-stream") || !window.EventSource) return;
    var url = pre.getAttribute("data-log-stream") + "?offset=" +
      encodeURIComponent(pre.getAttribute("data-log-offset") || "0");
    var source = new EventSource(url);
    var badge = document.querySelector("#launch-status [data-launch-status]");
    function showStatus(status) {
      if (!badge || !status || badge.textContent === status) return;
      badge.textContent = status;
      badge.className = "badge launch-" + status;
    }
    source.addEventListener("log", function (event) {
      var data = JSON.parse(event.data);
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(document.createTextNode(data.text));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      showStatus(data.status);
    });
    source.addEventListener("run", function (event) {
      var data = JSON.parse(event.data);
      var cell = document.getElementById("launch-run");
      if (!cell || cell.querySelector("a")) return;
      var link = document.createElement("a");
      link.href = data.url;
      link.textContent = data.workflow_id;
      cell.textContent = "";
      cell.appendChild(link);
    });
    source.addEventListener("end", function (event) {
      source.close();
      showStatus(JSON.parse(event.data).status);
      window.setTimeout(function () { window.location.reload(); }, 300);
    });
  }

  function schemaProperties(schema) {
    var found = {};
    function collect(node) {
      if (!node || typeof node !== "object") return;
      var props = node.properties || {};
      Object.keys(props).forEach(function (name) {
        if (props[name] && props[name].type && props[name].type !== "object") found[name] = props[name];
      });
      ["definitions", "$defs"].forEach(function (key) {
        var groups = node[key] || {};
        Object.keys(groups).forEach(function (group) { collect(groups[group]); });
      });
      (node.allOf || []).forEach(function (part) { collect(part); });
    }
    collect(schema);
    return found;
  }

  function schemaForm() {
    var form = document.getElementById("launch-form");
    if (!form) return;
    var engine = document.getElementById("launch-engine");
    var pipeline = document.getElementById("launch-pipeline");
    var params = document.getElementById("launch-params");
    var fieldset = document.getElementById("schema-fields");
    var inputs = {};

    function clear() {
      inputs = {};
      while (fieldset.children.length > 1) fieldset.removeChild(fieldset.lastChild);
      fieldset.hidden = true;
    }

    function build(schema) {
      clear();
      var props = schemaProperties(schema);
      var names = Object.keys(props);
      if (!names.length) return;
      names.forEach(function (name) {
        var prop = props[name];
        var label = document.createElement("label");
        label.textContent = name + " ";
        var input;
        if (prop.type === "boolean") {
          input = document.createElement("input");
          input.type = "checkbox";
          input.checked = prop["default"] === true;
        } else if (prop["enum"]) {
          input = document.createElement("select");
          prop["enum"].forEach(function (value) {
            var option = document.createElement("option");
            option.value = option.textContent = String(value);
            option.selected = value === prop["default"];
            input.appendChild(option);
          });
        } else {
          input = document.createElement("input");
          input.type = prop.type === "integer" || prop.type === "number" ? "number" : "text";
          if (prop.type === "number") input.step = "any";
          if (prop["default"] !== undefined && prop["default"] !== null) input.value = String(prop["default"]);
        }
        input.name = "schema-" + name;
        input.setAttribute("data-param", name);
        input.setAttribute("data-type", prop.type);
        if (prop.description) label.title = prop.description;
        label.appendChild(input);
        fieldset.appendChild(label);
        inputs[name] = input;
      });
      fieldset.hidden = false;
    }

    var looked = null;

    function lookup() {
      var key = engine.value + "\n" + pipeline.value.trim();
      if (key === looked) return;  // same pipeline: keep what was typed into its fields
      looked = key;
      if (engine.value !== "nextflow" || !pipeline.value.trim()) { clear(); return; }
      var url = form.getAttribute("data-schema-url") + "?pipeline=" + encodeURIComponent(pipeline.value.trim());
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { schema: null }; })
        .then(function (body) { if (body.schema) build(body.schema); else clear(); })
        .catch(clear);
    }

    engine.addEventListener("change", lookup);
    pipeline.addEventListener("change", lookup);
    form.addEventListener("submit", function () {
      var names = Object.keys(inputs);
      if (!names.length) return;
      var merged = {};
      try { merged = params.value.trim() ? JSON.parse(params.value) : {}; } catch (e) { return; }
      names.forEach(function (name) {
        var input = inputs[name];
        var type = input.getAttribute("data-type");
        if (type === "boolean") merged[name] = input.checked;
        else if (input.value === "") return;
        else if (type === "integer" || type === "number") merged[name] = Number(input.value);
        else merged[name] = input.value;
      });
      params.value = JSON.stringify(merged);
    });
    lookup();
  }

  document.addEventListener("DOMContentLoaded", function () {
    followLog();
    schemaForm();
  });
})();
