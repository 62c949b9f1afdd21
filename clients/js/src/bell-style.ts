/**
 * The bell's shadow-DOM styles. Theme it from the page with CSS custom
 * properties on `herald-bell` (they inherit through the shadow boundary):
 *
 *   --herald-accent, --herald-accent-soft   links, unread dots, focus rings
 *   --herald-badge-bg, --herald-badge-color the unread badge
 *   --herald-surface, --herald-hover        the dropdown and hovered rows
 *   --herald-text, --herald-text-muted      text
 *   --herald-border                         lines
 *   --herald-radius                         the dropdown's corners
 *   --herald-font                           font family
 *   --herald-icon-color                     the bell icon
 *   --herald-dropdown-width                 default 400px
 *
 *   --herald-switch-off                     a switch that is off (default: the border colour)
 *
 * and with `::part()`: `button`, `badge`, `dropdown`, `item`, `settings`
 * (the settings view), `switch` (every on/off switch in it), `snooze-menu`,
 * `snoozed` (the Snoozed view).
 */
export const BELL_CSS: string = `
:host {
  --_accent: var(--herald-accent, #4f46e5);
  --_accent-soft: var(--herald-accent-soft, #eef2ff);
  --_surface: var(--herald-surface, #ffffff);
  --_hover: var(--herald-hover, #f6f7f9);
  --_text: var(--herald-text, #111827);
  --_muted: var(--herald-text-muted, #6b7280);
  --_border: var(--herald-border, #e5e7eb);
  --_badge-bg: var(--herald-badge-bg, #e11d48);
  --_badge-color: var(--herald-badge-color, #ffffff);
  display: inline-block; position: relative;
  font: 14px/1.5 var(--herald-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif);
  color: var(--_text);
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
button { font: inherit; }
.bell {
  position: relative; width: 40px; height: 40px; display: grid; place-items: center;
  border: 0; border-radius: 10px; background: transparent; cursor: pointer;
  color: var(--herald-icon-color, #4b5563);
}
.bell:hover, .bell[aria-expanded="true"] { background: var(--_hover); color: var(--_text); }
.bell:focus-visible, .link:focus-visible, .action:focus-visible, .item:focus-visible {
  outline: 2px solid var(--_accent); outline-offset: 2px;
}
.bell.ring svg { animation: ring .7s ease-in-out; transform-origin: 50% 4px; }
@keyframes ring {
  15% { transform: rotate(14deg); } 30% { transform: rotate(-12deg); }
  45% { transform: rotate(8deg); } 60% { transform: rotate(-5deg); } 75% { transform: rotate(2deg); }
}
.badge {
  position: absolute; top: 3px; left: 21px; min-width: 18px; height: 18px; padding: 0 5px;
  border-radius: 9px; border: 2px solid var(--_surface);
  background: var(--_badge-bg); color: var(--_badge-color);
  font-size: 11px; font-weight: 700; line-height: 14px; text-align: center;
  font-variant-numeric: tabular-nums; white-space: nowrap; box-sizing: content-box;
}
.badge[hidden] { display: none; }
.dropdown {
  position: absolute; right: -8px; top: calc(100% + 10px); z-index: 1000;
  width: var(--herald-dropdown-width, 400px); max-width: calc(100vw - 24px);
  background: var(--_surface); border: 1px solid var(--_border);
  border-radius: var(--herald-radius, 12px);
  box-shadow: 0 12px 32px -6px rgba(16, 24, 40, .18), 0 4px 8px -4px rgba(16, 24, 40, .08);
  display: flex; flex-direction: column; overflow: hidden; text-align: left;
  animation: dd-in .12s ease-out;
}
.dropdown[hidden] { display: none; }
@keyframes dd-in { from { opacity: 0; transform: translateY(-4px); } }
.head {
  display: flex; align-items: center; justify-content: space-between;
  padding: 14px 16px 12px; border-bottom: 1px solid var(--_border);
}
.title { margin: 0; font-size: 15px; font-weight: 650; display: flex; align-items: center; gap: 8px; white-space: nowrap; }
.count { font-size: 12px; font-weight: 600; color: var(--_accent); background: var(--_accent-soft); border-radius: 999px; padding: 1px 8px; white-space: nowrap; }
.count:empty { display: none; }
.link { border: 0; background: none; white-space: nowrap; padding: 4px 6px; border-radius: 6px; color: var(--_accent); font-size: 13px; font-weight: 550; cursor: pointer; }
.link:hover:not(:disabled) { background: var(--_accent-soft); }
.link:disabled { color: var(--_muted); cursor: default; }
.scroll { max-height: min(440px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.items { list-style: none; margin: 0; padding: 0; }
.item {
  position: relative; display: grid; grid-template-columns: 36px 1fr 8px; gap: 12px;
  padding: 12px 16px 10px; border-bottom: 1px solid var(--_border);
}
.item:last-child { border-bottom: 0; }
.item:hover { background: var(--_hover); }
.item.linked { cursor: pointer; }
.item.fresh { animation: fresh 1.6s ease-out; }
@keyframes fresh { from { background: var(--_accent-soft); } }
.icon {
  --hue: 239; width: 36px; height: 36px; border-radius: 10px; display: grid; place-items: center;
  font-weight: 700; font-size: 14px; text-transform: uppercase;
  background: hsl(var(--hue) 90% 96%); color: hsl(var(--hue) 60% 48%); position: relative;
}
.stack {
  position: absolute; right: -6px; bottom: -6px; min-width: 14px; height: 14px; padding: 0 3px;
  border-radius: 8px; border: 2px solid var(--_surface); background: hsl(var(--hue) 60% 48%); color: #fff;
  font-size: 10px; font-weight: 700; line-height: 14px; text-align: center; font-variant-numeric: tabular-nums;
  box-sizing: content-box;
}
.stack[hidden] { display: none; }
.main { min-width: 0; }
.item-title { font-weight: 500; color: var(--_muted); overflow-wrap: anywhere; }
.item.unread .item-title { font-weight: 650; color: var(--_text); }
.who { font-weight: 650; color: var(--_text); }
.by { font-size: 12.5px; color: var(--_muted); }
.by[hidden] { display: none; }
.body {
  margin-top: 2px; color: var(--_muted); font-size: 13px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden;
}
.body[hidden] { display: none; }
.foot { margin-top: 4px; display: flex; align-items: center; justify-content: space-between; gap: 6px; min-height: 24px; }
.meta { font-size: 12px; color: var(--_muted); display: flex; gap: 6px; align-items: center; white-space: nowrap; min-width: 0; overflow: hidden; }
.cat { text-transform: capitalize; }
.dot { width: 8px; height: 8px; margin-top: 7px; border-radius: 50%; background: var(--_accent); }
.item:not(.unread) .dot { visibility: hidden; }
.actions { display: flex; gap: 2px; margin-right: -6px; }
.action {
  border: 0; background: none; cursor: pointer; font-size: 12px; font-weight: 550; color: var(--_muted);
  padding: 3px 5px; border-radius: 6px; white-space: nowrap;
}
.action:hover { background: var(--_hover); color: var(--_text); }
.action.primary { color: var(--_accent); }
.icon-action { display: grid; place-items: center; padding: 3px 5px; }
.action[aria-expanded="true"] { opacity: 1; background: var(--_hover); color: var(--_text); }
.action.subtle { opacity: 0; transition: opacity .1s; }
.item:hover .action.subtle, .item:focus-within .action.subtle, .item:focus .action.subtle { opacity: 1; }
.menu {
  position: absolute; z-index: 2; min-width: 230px; padding: 4px;
  background: var(--_surface); border: 1px solid var(--_border); border-radius: 10px;
  box-shadow: 0 10px 24px -6px rgba(16, 24, 40, .2);
}
.menu[hidden] { display: none; }
.menu-item {
  display: flex; justify-content: space-between; gap: 16px; width: 100%; padding: 6px 10px; border: 0; border-radius: 6px;
  background: none; color: var(--_text); font-size: 13px; text-align: left; cursor: pointer; white-space: nowrap;
}
.menu-item:hover { background: var(--_hover); }
.menu-item:focus-visible { outline: 2px solid var(--_accent); outline-offset: -2px; background: var(--_accent-soft); }
.menu-when { color: var(--_muted); font-size: 12px; }
.snoozed { max-height: min(440px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.snoozed[hidden] { display: none; }
.snoozed .alert { margin: 8px 16px; }
.snoozed-item { display: flex; align-items: center; justify-content: space-between; gap: 12px; padding: 10px 16px; border-bottom: 1px solid var(--_border); }
.snoozed-item:last-child { border-bottom: 0; }
.snoozed-item .item-title { color: var(--_text); }
.snoozed-when { display: block; font-size: 12px; color: var(--_muted); }
.note { display: flex; align-items: center; justify-content: center; gap: 8px; padding: 16px; color: var(--_muted); font-size: 13px; }
.note[hidden] { display: none; }
.note.error { color: var(--_badge-bg); }
.empty { padding: 40px 24px 44px; text-align: center; }
.empty[hidden] { display: none; }
.empty-title { margin: 12px 0 4px; font-weight: 650; font-size: 15px; }
.empty-text { margin: 0; color: var(--_muted); }
.spinner { width: 14px; height: 14px; border-radius: 50%; border: 2px solid var(--_border); border-top-color: var(--_accent); animation: spin .7s linear infinite; }
@keyframes spin { to { transform: rotate(360deg); } }
.footer { padding: 9px 16px; border-top: 1px solid var(--_border); font-size: 11.5px; color: var(--_muted); text-align: center; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }

/* The header's settings button and the settings view. */
.head-actions { display: flex; align-items: center; gap: 2px; }
.head-start { display: flex; align-items: center; gap: 4px; min-width: 0; }
.icon-btn {
  width: 30px; height: 30px; display: grid; place-items: center; border: 0; border-radius: 8px;
  background: none; color: var(--_muted); cursor: pointer; padding: 0;
}
.icon-btn:hover { background: var(--_hover); color: var(--_text); }
.icon-btn:focus-visible, .switch:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.icon-btn[hidden], .title[hidden], .link[hidden] { display: none; }
.settings { max-height: min(480px, calc(100vh - 160px)); overflow-y: auto; overscroll-behavior: contain; }
.settings[hidden], .scroll[hidden] { display: none; }
.group { padding: 14px 16px; border-bottom: 1px solid var(--_border); }
.group:last-child { border-bottom: 0; }
.group[hidden] { display: none; }
.group-title { margin: 0 0 8px; font-size: 12px; font-weight: 650; letter-spacing: .04em; text-transform: uppercase; color: var(--_muted); }
.setting { display: flex; align-items: center; justify-content: space-between; gap: 16px; }
.setting-text { display: flex; flex-direction: column; min-width: 0; }
.setting-title { font-weight: 600; }
.setting-hint { font-size: 12.5px; color: var(--_muted); }
.setting-hint.pad { margin: 4px 0 0; }
.setting-hint[hidden] { display: none; }
.switch {
  --_off: var(--herald-switch-off, var(--_border));
  position: relative; flex: none; width: 36px; height: 20px; padding: 0; border: 0; border-radius: 999px;
  background: var(--_off); cursor: pointer; transition: background .15s;
}
.switch .knob {
  position: absolute; top: 2px; left: 2px; width: 16px; height: 16px; border-radius: 50%;
  background: #fff; box-shadow: 0 1px 2px rgba(16, 24, 40, .25); transition: transform .15s;
}
.switch[aria-checked="true"] { background: var(--_accent); }
.switch[aria-checked="true"] .knob { transform: translateX(16px); }
.switch[aria-disabled="true"], .switch:disabled { opacity: .5; cursor: not-allowed; }
.switch[aria-busy="true"] { opacity: .7; cursor: progress; }
.prefs { width: 100%; border-collapse: collapse; }
.prefs[hidden] { display: none; }
.prefs th, .prefs td { padding: 7px 0; text-align: center; border-bottom: 1px solid var(--_border); }
.prefs tr:last-child th, .prefs tr:last-child td { border-bottom: 0; }
.prefs thead th { font-size: 12px; font-weight: 600; color: var(--_muted); padding-top: 0; }
.prefs th:first-child { text-align: left; font-weight: 500; }
.prefs thead th:first-child { font-weight: 600; }
.prefs th[hidden], .prefs td[hidden] { display: none; }
.prefs td, .prefs thead th:not(:first-child) { width: 72px; }
.cat-name { overflow-wrap: anywhere; }
.lock {
  display: inline-flex; align-items: center; gap: 3px; margin-left: 8px; padding: 0 6px; border-radius: 999px;
  font-size: 11px; font-weight: 600; color: var(--_muted); background: var(--_hover); vertical-align: 1px;
}
.lock[hidden] { display: none; }
.alert {
  margin: 8px 0; padding: 8px 10px; border-radius: 8px; font-size: 12.5px;
  color: var(--_badge-bg); background: color-mix(in srgb, var(--_badge-bg) 8%, var(--_surface));
}
.alert[hidden] { display: none; }
@media (prefers-reduced-motion: reduce) { .bell.ring svg, .item.fresh, .dropdown { animation: none; } .switch, .switch .knob { transition: none; } }
`;
