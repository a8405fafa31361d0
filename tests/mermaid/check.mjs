// Reads Mermaid diagrams from stdin, separated by NUL bytes, and prints one JSON verdict per
// diagram: whether Mermaid parses it and, for a gantt chart, whether every task has a start
// and an end it can read (a colon in a task name, or a date in another format, shows here;
// Mermaid's parse alone accepts both and the chart would render wrong or not at all).
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><body></body>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const verdicts = [];
for (const text of input.split("\0").filter((t) => t.trim())) {
  try {
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const tasks = diagram.db.getTasks ? diagram.db.getTasks() : [];
    const unreadable = tasks.filter(
      (t) =>
        !(t.startTime instanceof Date) ||
        Number.isNaN(t.startTime.getTime()) ||
        !(t.endTime instanceof Date) ||
        Number.isNaN(t.endTime.getTime()) ||
        t.endTime < t.startTime,
    );
    verdicts.push({
      ok: unreadable.length === 0,
      type: diagram.type,
      tasks: tasks.length,
      unreadable: unreadable.map((t) => t.task),
    });
  } catch (error) {
    verdicts.push({ ok: false, error: String(error.message || error).slice(0, 500) });
  }
}
console.log(JSON.stringify(verdicts));
