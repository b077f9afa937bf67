// WCAG 2 contrast of the text a page shows, measured in the browser:
// every visible element with text of its own (and every filled input's
// value and empty input's placeholder) against the background it is drawn
// on, composed from its ancestors' background colours over the white
// canvas. docs/ui.md promises 7:1 for all text, so large text gets no
// lower bar here.

// textContrast runs in the page. It returns one entry per text element
// whose ratio is under min, or whose colours it cannot read (a background
// image, a colour function other than rgb()), naming the element.
export function textContrast(min) {
  const parse = (c) => {
    const m = /^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/.exec(c);
    return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])] : null;
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const name = (el) => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += `#${el.id}`;
    for (const c of el.classList) s += `.${c}`;
    const tid = el.closest('[data-testid]')?.getAttribute('data-testid');
    if (tid) s += ` in [data-testid=${tid}]`;
    return s;
  };
  // background returns the opaque colour behind el, or a string saying
  // why it cannot be known.
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (st.backgroundImage !== 'none') return `a background image on ${name(e)}`;
      const c = parse(st.backgroundColor);
      if (!c) return `background colour ${st.backgroundColor} of ${name(e)}`;
      if (c[3] > 0) layers.push(c);
      if (c[3] === 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255, 1]);
  };
  const visible = (el) => {
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    // Screen-reader-only text (1 px, clipped) and off-screen text (the
    // skip link until focused) are not seen.
    return r.width > 1 && r.height > 1 && r.right > 0 && r.bottom > 0;
  };
  const found = [];
  const check = (el, color, text) => {
    const bg = background(el);
    const fg = parse(color);
    if (typeof bg === 'string' || !fg) {
      found.push({ element: name(el), text, problem: typeof bg === 'string' ? `cannot tell the background: ${bg}` : `cannot read the colour ${color}` });
      return;
    }
    const solid = over(fg, bg);
    const r = ratio(solid, bg);
    if (r < min) found.push({ element: name(el), text, problem: `${hex(solid)} on ${hex(bg)} is ${r.toFixed(2)}:1` });
  };
  let checked = 0;
  for (const el of document.body.querySelectorAll('*')) {
    if (el instanceof SVGElement || ['SCRIPT', 'STYLE', 'TEMPLATE', 'NOSCRIPT', 'CANVAS', 'OPTION'].includes(el.tagName) || !visible(el)) continue;
    const st = getComputedStyle(el);
    const own = [...el.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join('').trim();
    if (own) {
      checked++;
      check(el, st.color, own.slice(0, 40));
    }
    const field = el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' ||
      (el.tagName === 'INPUT' && !['checkbox', 'radio', 'hidden', 'file', 'submit', 'button', 'color', 'range'].includes(el.type));
    if (!field || el.disabled) continue;
    if (el.value !== '' && el.value !== undefined) {
      checked++;
      check(el, st.color, `value ${String(el.value).slice(0, 40)}`);
    } else if (el.placeholder) {
      checked++;
      check(el, getComputedStyle(el, '::placeholder').color, `placeholder ${el.placeholder.slice(0, 40)}`);
    }
  }
  return { checked, found };
}
