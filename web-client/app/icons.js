// Inline SVG icons (24x24, stroke-based; drawn for kham, no icon font or CDN).

const A = 'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"';

export const ICONS = {
  mic: `<svg ${A}><rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3"/></svg>`,
  micOff: `<svg ${A}><rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3M3 3l18 18"/></svg>`,
  cam: `<svg ${A}><rect x="3" y="6" width="13" height="12" rx="2"/><path d="M16 10l5-3v10l-5-3z"/></svg>`,
  camOff: `<svg ${A}><rect x="3" y="6" width="13" height="12" rx="2"/><path d="M16 10l5-3v10l-5-3zM3 3l18 18"/></svg>`,
  leave: `<svg ${A}><path d="M15 4h3a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-3M10 17l-5-5 5-5M5 12h11"/></svg>`,
  end: `<svg ${A}><path d="M3 15c5-5 13-5 18 0l-2.5 2.5-3-1.5v-3a10 10 0 0 0-7 0v3l-3 1.5z"/></svg>`,
  check: `<svg ${A}><path d="M5 12l5 5 9-10"/></svg>`,
  cross: `<svg ${A}><path d="M6 6l12 12M18 6L6 18"/></svg>`,
  audioOnly: `<svg ${A}><path d="M4 15v-3a8 8 0 0 1 16 0v3"/><rect x="3" y="14" width="4" height="7" rx="1.5"/><rect x="17" y="14" width="4" height="7" rx="1.5"/></svg>`,
  chat: `<svg ${A}><path d="M4 5h16v11H9l-5 4z"/></svg>`,
  pulse: `<svg ${A}><path d="M3 12h4l2-5 4 10 2-5h6"/></svg>`,
  image: `<svg ${A}><rect x="3" y="5" width="18" height="14" rx="2"/><circle cx="9" cy="10" r="2"/><path d="M21 16l-5-5-8 8"/></svg>`,
  share: `<svg ${A}><rect x="2" y="4" width="20" height="13" rx="2"/><path d="M8 21h8M12 17v4M12 14V8M9 10l3-3 3 3"/></svg>`,
  remove: `<svg ${A}><circle cx="9" cy="8" r="4"/><path d="M2 21a7 7 0 0 1 14 0M16 11h6"/></svg>`,
};
