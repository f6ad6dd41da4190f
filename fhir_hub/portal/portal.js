// The resident page: plain JavaScript over the hub's own FHIR JSON API, with the resident's bearer token.
// Nothing here is trusted by the hub: every request is checked by the API exactly as any client's is.
'use strict';
(() => {
  const TEXT = {
    vi: {
      'title': 'Hồ sơ sức khỏe của tôi', 'skip': 'Bỏ qua, đến nội dung chính', 'languages': 'Ngôn ngữ',
      'language-hint': 'Đổi ngôn ngữ của trang', 'other-language': 'English',
      'sign-in': 'Đăng nhập', 'token-label': 'Mã truy cập (token) của bạn',
      'token-hint': 'Dán mã bạn nhận được, hoặc mở đường liên kết đăng nhập.', 'sign-in-button': 'Đăng nhập',
      'signed-in-as': 'Hồ sơ:', 'sign-out': 'Đăng xuất', 'summary': 'Tóm tắt sức khỏe',
      'conditions': 'Bệnh và vấn đề sức khỏe', 'access-log': 'Ai đã xem hồ sơ của tôi',
      'consents': 'Sự đồng ý chia sẻ dữ liệu', 'correction': 'Yêu cầu sửa thông tin',
      'correction-record': 'Thông tin cần sửa', 'correction-text': 'Điều gì chưa đúng, và đúng ra là gì?',
      'correction-send': 'Gửi yêu cầu', 'requests': 'Yêu cầu đã gửi',
      'footer': 'Dữ liệu do các cơ sở y tế của Thành phố Hồ Chí Minh ghi lại.',
      'from-summary': 'Theo bản tóm tắt hồ sơ bệnh nhân (IPS).',
      'from-search': 'Theo danh sách bệnh được ghi trong hồ sơ.',
      'none': 'Không có thông tin.', 'loading': 'Đang tải…', 'signed-out': 'Bạn đã đăng xuất.',
      'not-resident': 'Mã này không phải của người dân (thiếu mã bệnh nhân).',
      'refused': 'Mã không dùng được (hết hạn hoặc không hợp lệ). Hãy đăng nhập lại.',
      'failed': 'Không thực hiện được', 'withdraw': 'Rút lại sự đồng ý này', 'withdrawn': 'Đã rút lại sự đồng ý.',
      'sent': 'Đã gửi yêu cầu sửa tới cơ sở', 'my-details': 'Thông tin cá nhân (họ tên, ngày sinh…)',
      'status': 'Trạng thái', 'since': 'từ', 'recorded': 'ghi nhận', 'emergency': 'Truy cập khẩn cấp',
      'reason': 'Lý do', 'facility': 'Cơ sở', 'permit': 'Cho phép', 'deny': 'Không cho phép',
      'everyone': 'mọi cơ sở', 'to': 'Gửi tới', 'purpose': 'Mục đích',
      'role-system': 'Hệ thống của cơ sở y tế', 'role-clinician': 'Nhân viên y tế', 'role-resident': 'Bạn',
      'role-operator': 'Đơn vị vận hành', 'role-hub': 'Hệ thống',
      'st-active': 'đang hiệu lực', 'st-inactive': 'đã rút lại', 'st-draft': 'nháp', 'st-proposed': 'đề xuất',
      'st-rejected': 'bị từ chối', 'st-requested': 'đã gửi', 'st-received': 'đã nhận', 'st-accepted': 'đã chấp nhận',
      'st-in-progress': 'đang xử lý', 'st-completed': 'đã hoàn tất', 'st-cancelled': 'đã hủy',
      'p-TREAT': 'điều trị', 'p-ETREAT': 'cấp cứu', 'p-HPAYMT': 'thanh toán', 'p-HRESCH': 'nghiên cứu',
      'p-PUBHLTH': 'y tế công cộng',
      'st-resolved': 'đã khỏi', 'st-recurrence': 'tái phát', 'st-relapse': 'tái phát', 'st-remission': 'thuyên giảm',
    },
    en: {
      'title': 'My health record', 'skip': 'Skip to the main content', 'languages': 'Language',
      'language-hint': 'Change the language of the page', 'other-language': 'Tiếng Việt',
      'sign-in': 'Sign in', 'token-label': 'Your access token', 'token-hint': 'Paste the token you were given, or open your sign-in link.',
      'sign-in-button': 'Sign in', 'signed-in-as': 'Record:', 'sign-out': 'Sign out', 'summary': 'Health summary',
      'conditions': 'Conditions and problems', 'access-log': 'Who accessed my record',
      'consents': 'My consents to share data', 'correction': 'Ask for a correction',
      'correction-record': 'What is wrong', 'correction-text': 'What is not right, and what should it say?',
      'correction-send': 'Send the request', 'requests': 'Requests sent',
      'footer': 'Recorded by the health facilities of Ho Chi Minh City.',
      'from-summary': 'From your International Patient Summary.', 'from-search': 'From the conditions in your record.',
      'none': 'No information.', 'loading': 'Loading…', 'signed-out': 'You are signed out.',
      'not-resident': 'This is not a resident\'s token (it names no patient).',
      'refused': 'The token cannot be used (expired or invalid). Please sign in again.',
      'failed': 'Could not do it', 'withdraw': 'Withdraw this consent', 'withdrawn': 'The consent is withdrawn.',
      'sent': 'Correction request sent to facility', 'my-details': 'My personal details (name, birth date…)',
      'status': 'Status', 'since': 'since', 'recorded': 'recorded', 'emergency': 'Emergency access',
      'reason': 'Reason', 'facility': 'Facility', 'permit': 'Permit', 'deny': 'Deny', 'everyone': 'any facility',
      'to': 'To', 'purpose': 'Purpose',
      'role-system': 'A facility\'s system', 'role-clinician': 'A clinician', 'role-resident': 'You',
      'role-operator': 'The hub\'s operator', 'role-hub': 'The hub',
      'st-active': 'active', 'st-inactive': 'withdrawn', 'st-draft': 'draft', 'st-proposed': 'proposed',
      'st-rejected': 'rejected', 'st-requested': 'sent', 'st-received': 'received', 'st-accepted': 'accepted',
      'st-in-progress': 'in progress', 'st-completed': 'completed', 'st-cancelled': 'cancelled',
      'p-TREAT': 'treatment', 'p-ETREAT': 'emergency treatment', 'p-HPAYMT': 'payment', 'p-HRESCH': 'research',
      'p-PUBHLTH': 'public health',
      'st-resolved': 'resolved', 'st-recurrence': 'recurred', 'st-relapse': 'relapsed', 'st-remission': 'in remission',
    },
  };
  const FACILITY_SYSTEM = 'http://fhir.hl7.org.vn/core/sid/ma-cskcb';
  const TASK_CODES = 'http://hl7.org/fhir/CodeSystem/task-code';
  const base = location.pathname.replace(/\/portal\/?$/, '');
  const $ = (id) => document.getElementById(id);
  const state = { token: null, patient: null, name: null, conditions: null, fromSummary: false, log: null, consents: null,
                  requests: null };
  let lang = localStorage.getItem('portal-language') === 'en' ? 'en' : 'vi';

  const t = (key) => TEXT[lang][key] ?? TEXT.vi[key] ?? key;
  const word = (prefix, key) => (TEXT[lang][prefix + key] ?? key);  // a code in words, or the code itself
  const status = (key) => word('st-', key);

  function say(message, isError = false) {
    const box = $('status');
    box.textContent = message;
    box.classList.toggle('error', isError);
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t('title');
    for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll('[data-i18n-label]')) node.setAttribute('aria-label', t(node.dataset.i18nLabel));
    const button = $('language');
    button.textContent = t('other-language');
    button.lang = lang === 'vi' ? 'en' : 'vi';
    render();
  }

  function when(instant) {
    if (!instant) return '';
    const date = new Date(instant);
    return isNaN(date) ? instant : date.toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB',
      instant.length <= 10 ? { dateStyle: 'medium' } : { dateStyle: 'medium', timeStyle: 'short' });
  }

  function text(concept) {
    if (!concept) return '';
    const coding = (concept.coding || [])[0] || {};
    return concept.text || coding.display || coding.code || '';
  }

  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const json = decodeURIComponent(Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
      return JSON.parse(json);
    } catch (e) {
      return {};
    }
  }

  async function api(path, options = {}) {
    const response = await fetch(base + path, {
      ...options,
      headers: { Accept: 'application/fhir+json', Authorization: 'Bearer ' + state.token, ...(options.headers || {}) },
    });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (response.status === 401) {
      signOut(t('refused'));
      throw new Error('401');
    }
    return { status: response.status, ok: response.ok, body, etag: response.headers.get('ETag') };
  }

  function problem(result) {
    const issue = ((result.body || {}).issue || [])[0] || {};
    return `${t('failed')} (HTTP ${result.status})${issue.diagnostics ? ': ' + issue.diagnostics : ''}`;
  }

  const entries = (bundle) => ((bundle || {}).entry || []).map((e) => e.resource).filter(Boolean);

  function item(title, lines, extra) {
    const li = document.createElement('li');
    const strong = document.createElement('span');
    strong.className = 'title';
    strong.textContent = title;
    li.append(strong);
    for (const line of lines.filter(Boolean)) {
      const span = document.createElement('span');
      span.className = 'meta';
      if (line instanceof Node) span.append(line); else span.textContent = line;
      li.append(span);
    }
    if (extra) li.append(extra);
    return li;
  }

  function list(id, items) {
    const ul = $(id);
    ul.replaceChildren(...(items.length ? items : [Object.assign(document.createElement('li'),
      { className: 'empty', textContent: t('none') })]));
  }

  function badge(label, kind) {
    return Object.assign(document.createElement('span'), { className: 'badge ' + kind, textContent: label });
  }

  // ---------------------------------------------------------------- what the page shows
  async function loadName() {
    const result = await api(`/Patient/${encodeURIComponent(state.patient)}`);
    const name = ((result.body || {}).name || [])[0] || {};
    state.name = name.text || [name.family, ...(name.given || [])].filter(Boolean).join(' ') || null;
  }

  async function loadSummary() {
    // $summary (the International Patient Summary) when the hub has it; the compartment search otherwise
    let result = await api(`/Patient/${encodeURIComponent(state.patient)}/$summary`);
    state.fromSummary = result.ok;
    if (result.status === 404) result = await api(`/Patient/${encodeURIComponent(state.patient)}/Condition?_count=100`);
    if (!result.ok) return say(problem(result), true);
    state.conditions = entries(result.body).filter((r) => r.resourceType === 'Condition');
  }

  async function loadAccessLog() {
    const result = await api('/Patient/$access-log?_count=50');
    if (!result.ok) return say(problem(result), true);
    state.log = entries(result.body);
  }

  async function loadConsents() {
    const result = await api('/Consent?_count=100');
    if (!result.ok) return say(problem(result), true);
    state.consents = entries(result.body);
  }

  async function loadRequests() {
    const result = await api('/Task?_count=50');
    if (!result.ok) return say(problem(result), true);
    state.requests = entries(result.body);
  }

  function render() {
    if (!state.patient) return;
    $('who').textContent = state.name || `Patient/${state.patient}`;
    $('summary-source').textContent = state.conditions ? t(state.fromSummary ? 'from-summary' : 'from-search') : '';
    list('conditions', (state.conditions || []).map((c) => item(text(c.code), [
      c.clinicalStatus ? `${t('status')}: ${status(text(c.clinicalStatus))}` : '',
      c.onsetDateTime ? `${t('since')} ${when(c.onsetDateTime)}` : c.recordedDate ? `${t('recorded')} ${when(c.recordedDate)}` : '',
    ])));
    list('access-log', (state.log || []).map(renderAccess));
    list('consents', (state.consents || []).map(renderConsent));
    list('requests', (state.requests || []).map((task) => item(task.description || text(task.code), [
      `${t('status')}: ${status(task.status)} · ${when(task.authoredOn)}`,
      `${t('to')}: ${facilityOf(task.owner)}`,
    ])));
    const select = $('correction-record');
    const chosen = select.value;
    const options = [[`Patient/${state.patient}`, t('my-details')],
      ...(state.conditions || []).map((c) => [`Condition/${c.id}`, text(c.code)])];
    select.replaceChildren(...options.map(([value, label]) => Object.assign(document.createElement('option'),
      { value, textContent: label })));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }

  function facilityOf(reference) {
    const identifier = (reference || {}).identifier || {};
    return (reference || {}).display || (identifier.system === FACILITY_SYSTEM ? identifier.value : '') ||
      (reference || {}).reference || '';
  }

  function renderAccess(event) {
    const agents = event.agent || [];
    const person = agents.find((a) => a.requestor) || {};
    const facility = agents.find((a) => (a.type || {}).text === 'facility');
    const purpose = (event.purposeOfEvent || [])[0] || {};
    const emergency = ((event.meta || {}).tag || []).some((tag) => tag.code === 'emergency-access');
    const what = (event.entity || []).map((e) => e.description).find(Boolean) || '';
    const who = word('role-', (person.type || {}).text || '');
    const why = ((purpose.coding || [])[0] || {}).code || '';
    return item(`${when(event.recorded)} · ${who}`, [
      facility ? `${t('facility')}: ${facilityOf(facility.who)}` : '',
      `${t('purpose')}: ${word('p-', why)}${purpose.text ? ' · ' + t('reason') + ': ' + purpose.text : ''}`,
      emergency ? badge(t('emergency'), 'emergency') : '',
      what,
    ]);
  }

  function renderConsent(consent) {
    const provision = consent.provision || {};
    const actors = (provision.actor || []).map((a) => facilityOf(a.reference)).filter(Boolean);
    const period = provision.period || {};
    const title = `${t(provision.type === 'deny' ? 'deny' : 'permit')}: ${actors.length ? actors.join(', ') : t('everyone')}`;
    let button = null;
    if (consent.status === 'active') {
      button = Object.assign(document.createElement('button'), { type: 'button', className: 'danger',
        textContent: t('withdraw') });
      button.dataset.consent = consent.id;
      button.setAttribute('aria-label', `${t('withdraw')}: ${title}`);
      button.addEventListener('click', () => withdraw(consent.id, button));
    }
    return item(title, [
      badge(status(consent.status), consent.status === 'active' ? 'active' : ''),
      (provision.purpose || []).map((p) => word('p-', p.code || '')).join(', '),
      period.start || period.end ? `${when(period.start)} – ${when(period.end)}` : '',
      consent.dateTime ? `${t('recorded')} ${when(consent.dateTime)}` : '',
    ], button);
  }

  // ---------------------------------------------------------------- what the resident does
  async function withdraw(id, button) {
    button.disabled = true;
    // withdrawing is an update of the resident's own Consent to status "inactive", on the version just read
    const current = await api(`/Consent/${encodeURIComponent(id)}`);
    if (!current.ok) { button.disabled = false; return say(problem(current), true); }
    const result = await api(`/Consent/${encodeURIComponent(id)}`, {
      method: 'PUT', body: JSON.stringify({ ...current.body, status: 'inactive' }),
      headers: { 'Content-Type': 'application/fhir+json', ...(current.etag ? { 'If-Match': current.etag } : {}) },
    });
    if (!result.ok) { button.disabled = false; return say(problem(result), true); }
    await loadConsents();
    render();
    say(t('withdrawn'));
  }

  async function requestCorrection(event) {
    event.preventDefault();
    const form = event.target;
    const task = {
      resourceType: 'Task', status: 'requested', intent: 'proposal',
      code: { coding: [{ system: TASK_CODES, code: 'change' }] },
      focus: { reference: $('correction-record').value }, for: { reference: `Patient/${state.patient}` },
      description: $('correction-text').value.trim(),
    };
    const button = form.querySelector('button');
    button.disabled = true;
    const result = await api('/Task', { method: 'POST', body: JSON.stringify(task),
      headers: { 'Content-Type': 'application/fhir+json' } });
    button.disabled = false;
    if (!result.ok) return say(problem(result), true);
    $('correction-text').value = '';
    await loadRequests();
    render();
    say(`${t('sent')} ${facilityOf(result.body.owner)}.`);
  }

  async function signIn(token) {
    const found = claims(token);
    if (!found.patient) return say(t('not-resident'), true);
    state.token = token;
    state.patient = found.patient;
    sessionStorage.setItem('portal-token', token);
    $('sign-in').hidden = true;
    $('record').hidden = false;
    say(t('loading'));
    try {
      await loadSummary();
      await Promise.all([loadName(), loadAccessLog(), loadConsents(), loadRequests()]);
    } catch (e) {
      return;
    }
    render();
    if ($('status').textContent === t('loading')) say('');
    document.body.dataset.ready = 'true';  // everything is shown (tests wait for this)
  }

  function signOut(message) {
    sessionStorage.removeItem('portal-token');
    Object.assign(state, { token: null, patient: null, name: null, conditions: null, log: null, consents: null, requests: null });
    $('record').hidden = true;
    $('sign-in').hidden = false;
    delete document.body.dataset.ready;
    say(message || t('signed-out'), Boolean(message));
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('language').addEventListener('click', () => {
      lang = lang === 'vi' ? 'en' : 'vi';
      localStorage.setItem('portal-language', lang);
      applyLanguage();
    });
    $('sign-in-form').addEventListener('submit', (event) => {
      event.preventDefault();
      signIn($('token').value.trim());
      $('token').value = '';
    });
    $('sign-out').addEventListener('click', () => signOut());
    $('correction-form').addEventListener('submit', requestCorrection);
    applyLanguage();
    // a link's token is in the fragment (never sent to a server); take it out of the address bar and history
    const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
    if (fromLink) history.replaceState(null, '', location.pathname + location.search);
    const token = fromLink || sessionStorage.getItem('portal-token');
    if (token) signIn(token);
  });
})();
