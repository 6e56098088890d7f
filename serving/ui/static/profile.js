
'use strict';
(() => {
  const KEY = 'crmscore.apiKey';
  const LANG_KEY = 'crmscore.lang';
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ language (serving/i18n catalogue)
  const I18N = JSON.parse(document.querySelector('meta[name=crmscore-messages]').content);
  function pickLang() {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === 'zh' || saved === 'en') return saved;
    if (I18N.default === 'zh' || I18N.default === 'en') return I18N.default;
    return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  }
  let lang = pickLang();
  // t(message, {n: 3}): the message in the page's language, its {placeholders} filled
  function t(msg, vars) {
    const text = (I18N.messages[lang] || {})[msg] || msg;
    return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
  }
  function applyLang() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    for (const e of document.querySelectorAll('[data-i18n-placeholder]')) {
      e.setAttribute('placeholder', t(e.dataset.i18nPlaceholder));
    }
    for (const e of document.querySelectorAll('[data-i18n-aria-label]')) {
      e.setAttribute('aria-label', t(e.dataset.i18nAriaLabel));
    }
    $('lang').value = lang;
  }
  const NUM_LOCALE = () => (lang === 'zh' ? 'zh-CN' : 'en-US');
  const SVG = 'http://www.w3.org/2000/svg';
  const FIRST_EVENTS = 12;

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }
  const fmt = {
    pct: (p) => (p === null || p === undefined) ? '–' : (100 * p).toFixed(1) + '%',
    num: (x, d) => (x === null || x === undefined) ? '–' : Number(x).toFixed(d),
    money: (x) => (x === null || x === undefined) ? '–' : '¥' + Number(x).toLocaleString(NUM_LOCALE(),
      {minimumFractionDigits: 2, maximumFractionDigits: 2}),
    time: (s) => s ? s.replace('T', ' ').slice(0, 16) : '–',
    day: (s) => s ? s.slice(0, 10) : '–',
    value: (v) => (v === null || v === undefined) ? t('missing') :
      (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v)),
  };

  class AuthError extends Error {}
  let status = null;  // the last /ui/api/status answer
  let view = null;  // redraws what is shown (results or a profile) after a language switch
  function showStatus() {
    if (!status) return;
    $('meta').textContent = t('{n} customers · as of {time} ({source})', {
      n: status.customers.toLocaleString(NUM_LOCALE()), time: fmt.time(status.as_of), source: status.as_of_source});
  }

  function key() { return sessionStorage.getItem(KEY); }

  async function api(path, body) {
    const opts = {method: body ? 'POST' : 'GET', cache: 'no-store',
      // the server's error messages come back in the page's language (field names and JSON keys stay English)
      headers: {'Authorization': 'Bearer ' + (key() || ''), 'Accept-Language': lang}};
    if (body) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (r.status === 401) throw new AuthError(data.error || t('API key refused'));
    if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
    return data;
  }

  // what #msg shows, for a language switch: a function making the text (the page's own messages) is called again;
  // a server error is asked again by repeating the action that failed (the server answers in the new language)
  let shown = null;
  function say(text, isError, again) {
    const m = $('msg');
    const make = typeof text === 'function' ? text : null;
    const s = make ? make() : text;
    m.textContent = s || '';
    m.hidden = !s;
    m.classList.toggle('error', !!isError);
    shown = s ? {make: make, isError: !!isError, again: again || null} : null;
  }
  function sayAgain() {
    if (!shown) return;
    const {make, isError, again} = shown;
    if (again) { say(''); again(); } else if (make) say(make, isError);
  }
  function clearData() {
    view = null;
    status = null;
    $('profile').replaceChildren();
    $('profile').hidden = true;
    $('result-list').replaceChildren();
    $('results').hidden = true;
    $('meta').textContent = '';
  }
  function askKey(reason) {
    sessionStorage.removeItem(KEY);
    clearData();
    $('searchbox').hidden = true;
    $('signout').hidden = true;
    $('keybox').hidden = false;
    say(reason || '', !!reason);
    $('key').value = '';
    $('key').focus();
  }
  function failed(e, again) {
    if (e instanceof AuthError) askKey(() => t('The API key was refused: {reason}', {reason: e.message}));
    else say(e.message || String(e), true, again);
  }

  async function start() {
    try {
      const s = await api('/ui/api/status');
      $('keybox').hidden = true;
      $('searchbox').hidden = false;
      $('signout').hidden = false;
      status = s;
      showStatus();
      $('meta').dataset.asOf = s.as_of;
      say('');
      $('q').focus();
    } catch (e) { failed(e, start); }
  }

  async function search(q) {
    say('');
    $('results').hidden = true;
    try {
      const r = await api('/ui/api/search', {q: q});
      if (r.total === 0) {
        $('profile').hidden = true;
        say(() => t('No match: no customer has the id or a name containing “{q}”.', {q: q}));
        return;
      }
      if (r.total === 1) { await openProfile(r.matches[0].customer_id); return; }
      view = () => showResults(q, r);
      view();
    } catch (e) { failed(e, () => search(q)); }
  }

  function showResults(q, r) {
    $('profile').hidden = true;
    const list = $('result-list');
    list.replaceChildren();
    const shown = r.matches.length;
    $('results-title').textContent = t('{n} customers match “{q}”', {n: r.total, q: q}) +
      (r.truncated ? t(' — showing the first {shown}; type more of the name to narrow it down', {shown: shown}) : '');
    for (const m of r.matches) {
      const b = el('button', {type: 'button', 'data-id': m.customer_id},
        el('span', {class: 'rname', text: m.name || t('(no name)')}),
        el('span', {class: 'rid', text: m.customer_id}),
        el('span', {class: 'rwhere', text: [m.province, m.city].filter(Boolean).join(' ') || ''}),
        el('span', {class: 'rwhere', text: m.member_level ? t('member: {level}', {level: m.member_level}) : ''}),
        el('span', {class: 'rwhere', text: t('since {day}', {day: fmt.day(m.created_at)})}));
      b.addEventListener('click', () => openProfile(m.customer_id));
      list.append(el('li', {}, b));
    }
    $('results').hidden = false;
  }

  // the models card's "why not loaded" is the server's text: after a language switch it is asked again from
  // GET /model_info (same roles as the page, no customer data, not a recorded view) and the profile redrawn
  let shownProfile = null;
  async function relocalizeModels() {
    const p = shownProfile;
    if (!p || $('profile').hidden || !Object.values(p.models || {}).some((m) => m.error)) return;
    try {
      const info = await api('/model_info');
      for (const [kind, m] of Object.entries(p.models)) {
        const now = (info.models || {})[kind];
        if (m.error && now && now.error) m.error = now.error;
      }
      if (view && shownProfile === p && !$('profile').hidden) view();
    } catch (e) { /* the text stays as it was */ }
  }

  async function openProfile(id) {
    try {
      say(() => t('Loading {id} …', {id: id}));
      performance.mark('profile-start');
      const p = await api('/ui/api/profile', {customer_id: id});
      say('');
      shownProfile = p;
      view = () => render(p);
      view();
      performance.measure('profile', 'profile-start');  // request + drawing (bench/bench_profile_page.py)
    } catch (e) { failed(e, () => openProfile(id)); }
  }

  // ------------------------------------------------------------------ rendering
  const ATTRS = [
    ['customer_id', () => t('Customer id')], ['name', () => t('Name'), 1], ['phone', () => t('Phone'), 1],
    ['email', () => t('Email'), 1], ['address', () => t('Address'), 1], ['created_at', () => t('Created')],
    ['source_channel', () => t('Source channel')], ['province', () => t('Province')], ['city', () => t('City')],
    ['industry', () => t('Industry')], ['company_size', () => t('Company size')],
    ['job_title', () => t('Job title')], ['gender', () => t('Gender')], ['age', () => t('Age')],
    ['member_level', () => t('Member level')], ['points_balance', () => t('Points')],
    ['marketing_consent', () => t('Marketing consent')],
    ['owner_id', () => t('Owner')], ['team_id', () => t('Team')],
  ];

  function card(title, sub, testid, span) {
    const h = el('h2', {}, title);
    if (sub) h.append(' ', el('span', {class: 'sub', text: sub}));
    return el('section', {class: 'card' + (span ? ' span2' : '') + (testid === 'churn' ? ' risk' : ''),
                          'data-testid': testid}, h);
  }

  function attrsCard(c, masked) {
    const s = card(t('Attributes'), masked ? t('personal data masked for your role') : null, 'attributes');
    const dl = el('dl', {class: 'attrs'});
    for (const [k, label, pii] of ATTRS) {
      let v = c[k];
      if (k === 'created_at') v = fmt.time(v);
      else if (typeof v === 'boolean') v = v ? t('yes') : t('no');
      else if (v === null || v === undefined || v === '') v = '–';
      const dt = el('dt', {text: label()});
      if (pii) dt.append(el('span', {class: 'pii', text: t('PII'), title: t('personal data: shown only here')}));
      dl.append(dt, el('dd', {'data-field': k, text: String(v)}));
    }
    s.append(dl);
    return s;
  }

  function reasonChart(res, upText, downText) {
    const wrap = el('div', {class: 'chart'});
    const all = [...res.reasons.positive, ...res.reasons.negative];
    const scale = Math.max(1e-9, ...all.map((r) => Math.abs(r.contribution)));
    for (const [items, cls, title] of [[res.reasons.positive, 'up', upText],
                                       [res.reasons.negative, 'down', downText]]) {
      if (!items.length) continue;
      const ul = el('ul', {class: 'reasons', 'data-direction': cls});
      wrap.append(el('h3', {class: 'reasons-title', text: title}), ul);
      for (const r of items) {
        const w = 98 * Math.abs(r.contribution) / scale;
        const svg = sv('svg', {viewBox: '0 0 200 12', preserveAspectRatio: 'none', role: 'img',
          'aria-label': r.label + ' ' + r.contribution.toFixed(3)});
        svg.append(sv('rect', {x: r.contribution >= 0 ? 100 : 100 - w, y: 1, width: w, height: 10, class: cls}),
                   sv('line', {x1: 100, x2: 100, y1: 0, y2: 12, class: 'axis'}));
        ul.append(el('li', {class: 'reason ' + cls, 'data-feature': r.feature,
                            'data-contribution': String(r.contribution)},
          el('div', {class: 'rlabel'}, el('span', {text: r.label}),
             el('span', {class: 'rval', text: '= ' + fmt.value(r.value)})),
          el('div', {class: 'rbar'}, svg,
             el('span', {class: 'rnum', text: (r.contribution > 0 ? '+' : '') + r.contribution.toFixed(3)}))));
      }
    }
    if (!all.length) wrap.append(el('p', {class: 'note', text: t('No reasons: every feature is at its average.')}));
    return wrap;
  }

  function modelLine(res) {
    return el('p', {class: 'muted', 'data-testid': 'model-version',
      text: t('model {name} v{version}', {name: res.model, version: res.model_version})});
  }

  function fitIntentCard(res) {
    // the fit × intent matrix: rows = BANT fit grade, columns = the model's intent grade; this lead's cell marked
    const G = ['A', 'B', 'C', 'D'];
    const wrap = el('div', {class: 'fitintent', 'data-testid': 'fit-intent', 'data-value': res.fit_intent});
    wrap.append(el('p', {class: 'note', text: 'BANT fit ' + res.fit_grade + ' (score ' + fmt.num(res.fit_score, 0) +
      ') × intent ' + res.grade + ' · 资质 × 意向'}));
    const head = el('tr', {}, el('th', {text: 'fit \\ intent'}));
    G.forEach((g) => head.append(el('th', {text: g})));
    const tb = el('tbody');
    for (const f of G) {
      const tr = el('tr', {}, el('th', {text: f}));
      for (const i of G) {
        tr.append(el('td', {class: f === res.fit_grade && i === res.grade ? 'here' : null,
                            text: f === res.fit_grade && i === res.grade ? '●' : ''}));
      }
      tb.append(tr);
    }
    wrap.append(el('table', {class: 'matrix'}, el('thead', {}, head), tb));
    return wrap;
  }

  function scoreCard(kind, res, status) {
    const isLead = kind === 'lead';
    const s = card(isLead ? t('Lead score') : t('Churn risk'),
      isLead ? t('probability of a first paid order in the horizon') : t('probability of no paid order in the horizon'),
      kind);
    if (res.error) { s.append(el('p', {class: 'err', text: res.error})); return s; }
    const applies = isLead ? status.is_lead : status.is_active;
    s.append(el('div', {class: 'headline'},
      el('span', {class: 'big', 'data-testid': kind + '-score', 'data-value': String(res.score),
                  text: String(res.score)}),
      el('span', {class: 'grade ' + res.grade, 'data-testid': kind + '-grade', text: res.grade,
                  title: t('grade A–D (cut points {cuts})', {cuts: (res.grade_thresholds || []).join('/')})}),
      el('span', {'data-testid': kind + '-probability', 'data-value': String(res.probability),
                  text: 'p = ' + fmt.num(res.probability, 4)})));
    if (!applies) {
      s.append(el('p', {class: 'note warn', text: isLead
        ? t('This model scores leads (no paid order yet); this customer has {n} paid order(s).', {n: status.paid_orders})
        : (status.paid_orders
          ? t('This model scores active customers (a paid order in the last {days} days); this customer has none that recent.', {days: status.churn_lookback_days})
          : t('This model scores active customers (a paid order in the last {days} days); this customer has no paid order.', {days: status.churn_lookback_days}))}));
    }
    if (res.unknown_categories && res.unknown_categories.length) {
      s.append(el('p', {class: 'note', text: t('Values the model never saw: {values}', {values: res.unknown_categories.join(', ')})}));
    }
    if (isLead && res.fit_grade) s.append(fitIntentCard(res));
    s.append(reasonChart(res, isLead ? t('Raise the score') : t('Raise the risk'),
                         isLead ? t('Lower the score') : t('Lower the risk')));
    s.append(modelLine(res));
    return s;
  }

  function segmentCard(g) {
    const s = card(t('Segment & value'), null, 'segment');
    if (g.error) { s.append(el('p', {class: 'err', text: g.error})); return s; }
    const dl = el('dl', {class: 'kv'});
    const row = (label, testid, text, value) => dl.append(el('dt', {text: label}),
      el('dd', {'data-testid': testid, 'data-value': value === undefined || value === null ? null : String(value),
                text: text}));
    row(t('RFM segment'), 'seg-rfm', g.rfm_segment);
    row('R / F / M', 'seg-rfm-scores', g.r_score + ' / ' + g.f_score + ' / ' + g.m_score);
    const tier = el('dd', {'data-testid': 'seg-tier', 'data-value': g.value_tier},
      g.value_tier + ' ', el('span', {class: 'chip', 'data-testid': 'seg-tier-zh', text: g.value_tier_zh || '–'}));
    dl.append(el('dt', {text: t('Value tier')}), tier);
    row(t('Cluster'), 'seg-cluster', '#' + g.cluster + ' · ' + g.cluster_description, g.cluster);
    row('P(alive)', 'seg-palive', fmt.pct(g.p_alive), g.p_alive);
    row(t('Expected purchases'), 'seg-ep',
        t('{value} in {days} days', {value: fmt.num(g.expected_purchases, 2), days: g.horizon_days}),
        g.expected_purchases);
    row(t('Expected value'), 'seg-ev',
        t('{value} in {days} days', {value: fmt.money(g.expected_value), days: g.horizon_days}),
        g.expected_value);
    s.append(dl, modelLine(g));
    return s;
  }

  function memberCard(g) {
    const s = card(t('Member level & tags'), t('from the paid orders and events up to the as-of time'), 'member');
    const m = g && !g.error ? g.member : null;
    if (!m) {
      s.append(el('p', {class: 'note', text: g && g.error ? t('No level: {reason}', {reason: g.error}) : t('No member data.')}));
      return s;
    }
    s.append(el('div', {class: 'headline'},
      el('span', {class: 'level', 'data-testid': 'member-level', 'data-value': m.member_level,
                  text: (m.member_level_zh || m.member_level) + ' · ' + m.member_level})));
    const p = m.level_progress === null || m.level_progress === undefined ? 0 : m.level_progress;
    const bar = sv('svg', {viewBox: '0 0 100 8', preserveAspectRatio: 'none', class: 'progress',
                           role: 'img', 'aria-label': 'progress to the next level ' + fmt.pct(p)});
    bar.append(sv('rect', {x: 0, y: 0, width: 100, height: 8, rx: 3, class: 'track'}),
               sv('rect', {x: 0, y: 0, width: (100 * p).toFixed(1), height: 8, rx: 3, class: 'fill'}));
    s.append(el('div', {class: 'levelbar', 'data-testid': 'level-progress', 'data-value': String(p)}, bar,
      el('span', {class: 'muted', text: m.next_level ? fmt.pct(p) + ' · ' + m.progress : t('top level')})));
    const chips = el('div', {class: 'tags', 'data-testid': 'member-tags'});
    for (const t of m.tags) {
      chips.append(el('span', {class: 'chip tag ' + t.kind, 'data-tag': t.tag, title: t.why, tabindex: 0,
                               text: t.tag + (t.en ? ' · ' + t.en : '')}));
    }
    if (!m.tags.length) chips.append(el('span', {class: 'note', text: t('No tag applies.')}));
    s.append(chips);
    const skipped = Object.keys(m.tags_not_evaluated || {});
    if (skipped.length) {
      s.append(el('p', {class: 'note', title: Object.entries(m.tags_not_evaluated).map(
        ([k, v]) => k + ': ' + v).join('\n'), text: 'Not evaluated here: ' + skipped.join(', ')}));
    }
    return s;
  }

  function funnelCard(f, st) {
    const s = card(t('Funnel'), f.stage
      ? t('reached: {stage} ({depth} of {n})', {stage: f.stage, depth: f.depth, n: f.stages.length})
      : t('no funnel step yet'), 'funnel');
    const ol = el('ol', {class: 'funnel'});
    f.stages.forEach((name, i) => ol.append(el('li', {
      class: (i < f.depth ? 'on' : '') + (i === f.depth - 1 ? ' here' : ''),
      'data-stage': name, text: name})));
    s.append(ol, el('p', {class: 'note', text: st.last_paid_order
      ? t('{n} paid order(s), the last on {day}.', {n: st.paid_orders, day: fmt.day(st.last_paid_order)})
      : t('{n} paid order(s).', {n: st.paid_orders})}));
    return s;
  }

  function timelineCard(p) {
    const shown = p.timeline.length;
    const s = card(t('Recent history'), shown < p.timeline_total
      ? t('latest {shown} of {total}', {shown: shown, total: p.timeline_total})
      : t('{n} event(s)', {n: p.timeline_total}), 'timeline', true);
    const ol = el('ol', {class: 'timeline'});
    p.timeline.forEach((t, i) => {
      ol.append(el('li', {'data-kind': t.kind, hidden: i >= FIRST_EVENTS},
        el('time', {datetime: t.ts, text: fmt.time(t.ts)}),
        el('span', {class: 'kind ' + t.kind, text: t.kind}),
        el('span', {class: 'what'}, el('b', {text: t.title}), ' ', el('span', {text: t.detail}))));
    });
    if (!shown) s.append(el('p', {class: 'note', text: t('No events at or before the as-of time.')}));
    s.append(ol);
    if (shown > FIRST_EVENTS) {
      const more = el('button', {type: 'button', class: 'more', 'data-testid': 'timeline-more',
                                 text: t('Show all {n}', {n: shown})});
      more.addEventListener('click', () => {
        for (const li of ol.children) li.hidden = false;
        more.remove();
      });
      s.append(more);
    }
    return s;
  }

  function modelsCard(models) {
    const s = card(t('Models'), t('the versions that produced the numbers above'), 'models', true);
    const tb = el('tbody');
    for (const [kind, m] of Object.entries(models)) {
      tb.append(el('tr', {'data-kind': kind}, el('td', {text: kind}), el('td', {text: m.name}),
        el('td', {text: m.loaded ? 'v' + m.version : t('not loaded')}), el('td', {class: 'alias', text: '@' + m.alias}),
        el('td', {class: 'trained', text: m.trained_at ? t('trained {when}', {when: m.trained_at}) : (m.error || '')})));
    }
    s.append(el('table', {class: 'models'}, el('thead', {}, el('tr', {},
      el('th', {text: t('Use')}), el('th', {text: t('Model')}), el('th', {text: t('Version')}),
      el('th', {class: 'alias', text: t('Alias')}),
      el('th', {class: 'trained', text: t('Trained')}))), tb));
    return s;
  }

  function render(p) {
    $('results').hidden = true;
    const c = p.customer;
    const root = $('profile');
    const title = el('div', {class: 'title'},
      el('h1', {'data-testid': 'name', text: c.name || t('(no name)')}),
      el('span', {class: 'cid', 'data-testid': 'customer-id', text: c.customer_id}),
      el('span', {class: 'muted', 'data-testid': 'as-of', 'data-value': p.as_of,
                  text: t('as of {time} · {source}', {time: fmt.time(p.as_of), source: p.as_of_source})}));
    const grid = el('div', {class: 'grid'});
    const left = el('div', {class: 'col'}), right = el('div', {class: 'col'});
    left.append(attrsCard(c, p.pii_masked), segmentCard(p.segment), memberCard(p.segment), funnelCard(p.funnel, p.status));
    right.append(scoreCard('lead', p.lead, p.status), scoreCard('churn', p.churn, p.status));
    grid.append(left, right, timelineCard(p), modelsCard(p.models));
    root.replaceChildren(title, grid);
    root.hidden = false;
    root.dataset.customerId = c.customer_id;
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ next steps (action, recommendations)
  // Loaded whenever a profile is drawn (render() sets #profile's data-customer-id).
  function nextStepsCard(n) {
    const s = $('next-steps');
    const h = el('h2', {}, 'Next steps · 下一步行动');
    h.append(' ', el('span', {class: 'sub', text: 'configs/actions.yaml and the cross_sell model'}));
    const a = n.action || {};
    const act = a.error ? el('p', {class: 'muted', 'data-testid': 'action-error', text: a.error}) :
      el('p', {'data-testid': 'action', 'data-action-id': a.action_id},
        el('strong', {text: a.action}), ' — ', el('span', {'data-testid': 'action-reason', text: a.reason}),
        a.channel ? el('span', {class: 'muted', text: ' · ' + a.channel}) : null);
    const r = n.recommendations || {};
    let recs;
    if (r.error) recs = el('p', {class: 'muted', 'data-testid': 'recs-error', text: r.error});
    else {
      recs = el('ol', {class: 'recs', 'data-testid': 'recs'});
      for (const x of r.recommendations || []) {
        recs.append(el('li', {'data-sku': x.sku}, el('strong', {text: x.product_name}),
          el('span', {class: 'muted', text: ' (' + x.sku + ') '}), el('span', {class: 'evidence', text: x.evidence})));
      }
      if (!(r.recommendations || []).length) recs.append(el('li', {class: 'muted', text: 'no product to recommend'}));
    }
    s.replaceChildren(h, el('h3', {text: 'Action · 行动'}), act,
      el('h3', {text: 'Recommended products · 推荐商品'}), recs);
    s.hidden = false;
  }
  async function loadNextSteps(id) {
    $('next-steps').hidden = true;
    try {
      const n = await api('/ui/api/next_steps', {customer_id: id});
      if (n.customer_id === nextStepsFor) nextStepsCard(n);  // a later profile may have been opened meanwhile
    } catch (e) { failed(e, () => loadNextSteps(id)); }
  }
  let nextStepsFor = null;
  new MutationObserver(() => {
    const prof = $('profile'), id = prof.dataset.customerId;
    if (prof.hidden) { $('next-steps').hidden = true; nextStepsFor = null; return; }
    if (id && id !== nextStepsFor) { nextStepsFor = id; loadNextSteps(id); }
  }).observe($('profile'), {attributes: true, attributeFilter: ['data-customer-id', 'hidden']});

  // ------------------------------------------------------------------ wiring
  $('keyform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = $('key').value.trim();
    if (!k) return;
    sessionStorage.setItem(KEY, k);
    start();
  });
  $('searchform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('q').value.trim();
    if (q) search(q);
  });
  $('signout').addEventListener('click', () => askKey(''));
  $('lang').addEventListener('change', () => {
    lang = $('lang').value === 'zh' ? 'zh' : 'en';
    localStorage.setItem(LANG_KEY, lang);
    applyLang();
    showStatus();
    if (view) view();
    sayAgain();  // a message or error on screen: in the new language too
    relocalizeModels();
  });
  applyLang();
  if (key()) start(); else askKey('');
})();
