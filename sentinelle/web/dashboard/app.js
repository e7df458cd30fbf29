/* Sentinelle dashboard (issue 9): plain JavaScript, no build step.
   OpenLayers (window.ol) for the map, Chart.js (window.Chart) for the series,
   labels from dashboard/static/i18n.js. Every request goes to this server:
   Maps API images for the current view, Features API vectors, the
   zonal-statistics process for time series, asynchronous jobs for analyses. */
(function () {
  'use strict';

  const I18N = window.SENTINELLE_I18N;
  const BASE = new URL('.', window.location.href); // server root, keeps a proxy prefix
  const ROOT = BASE.href.replace(/\/$/, '');
  const api = (path) => new URL(path, BASE).href;
  const $ = (id) => document.getElementById(id);
  const CRS3857 = 'http://www.opengis.net/def/crs/EPSG/0/3857';
  const INDICES = ['NDVI', 'NDWI', 'NDMI', 'NBR', 'EVI', 'SAVI'];

  // the territories, from the server's configuration (dashboard/territories.json): id →
  // {title, bbox, s2, ndvi, parcels, communes, zones, fields, before, after, threshold}
  const AREAS = {};

  const params = new URLSearchParams(window.location.search);
  const state = {
    lang: I18N[params.get('lang')] ? params.get('lang')
      : (I18N[localStorage.getItem('sentinelle.lang')] ? localStorage.getItem('sentinelle.lang') : 'fr'),
    area: params.get('area'),
    extent84: null, extent3857: null, dates: [], clouds: {}, date: null,
    selection: null, series: null, commune: null,
    job: null, result: null, compare: false, pending: 0, error: null,
  };

  // --- labels

  function t(key, vars) {
    let s = I18N[state.lang][key];
    if (s === undefined) s = I18N.fr[key] !== undefined ? I18N.fr[key] : key;
    return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? vars[k] : m)) : s;
  }

  function applyLang() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll('#area option').forEach((option) => {
      const area = AREAS[option.value];
      if (area) option.textContent = area.title[state.lang] || area.title.fr;
    });
    document.title = 'Sentinelle — ' + (state.lang === 'fr' ? 'tableau de bord' : 'dashboard');
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-title]').forEach((el) => { el.title = t(el.dataset.i18nTitle); });
    document.querySelectorAll('.lang-switch [data-lang]').forEach((b) => {
      if (b.dataset.lang === state.lang) b.setAttribute('aria-current', 'true');
      else b.removeAttribute('aria-current');
    });
    localStorage.setItem('sentinelle.lang', state.lang);
    updateUrl();
    renderDates();
    renderGis();
    renderSelection();
    renderJob();
    renderResult();
    renderCompareButton();
    if (state.error) showError(state.error);
  }

  function updateUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set('lang', state.lang);
    url.searchParams.set('area', state.area);
    window.history.replaceState(null, '', url.pathname + url.search);
  }

  // --- server calls and errors

  async function httpError(resp) {
    let detail = '';
    try {
      const body = await resp.clone().json();
      detail = body.description || body.detail || body.message || body.code || '';
    } catch (e) {
      detail = (await resp.text()).slice(0, 300);
    }
    const err = new Error(detail || ('HTTP ' + resp.status));
    err.status = resp.status;
    err.detail = detail;
    return err;
  }

  async function request(url, options) {
    let resp;
    try {
      resp = await fetch(url, options);
    } catch (e) {
      const err = new Error(String(e));
      err.status = 0;
      throw err;
    }
    if (!resp.ok) throw await httpError(resp);
    return resp;
  }

  async function getJSON(url) {
    return (await request(url.startsWith('http') ? url : api(url), {headers: {Accept: 'application/json'}})).json();
  }

  function postProcess(id, body, async_) {
    const headers = {'Content-Type': 'application/json', Accept: 'application/json'};
    if (async_) headers.Prefer = 'respond-async';
    return request(api('processes/' + id + '/execution'),
      {method: 'POST', headers: headers, body: JSON.stringify(body)});
  }

  function friendly(err) {
    const s = err.status;
    if (err.local) return err.detail;
    let key = 'err.400';
    if (err.job) key = 'err.job';
    else if (!s) key = 'err.network';
    else if (s === 404) key = 'err.404';
    else if (s === 413) key = 'err.413';
    else if (s >= 500) key = 'err.5xx';
    return t(key) + (err.detail ? ' ' + t('err.detail', {detail: err.detail}) : '');
  }

  function showError(err) {
    state.error = err;
    $('error-text').textContent = friendly(err);
    $('error').hidden = false;
    console.warn('Sentinelle:', err.status, err.detail || err.message);
  }

  function clearError() {
    state.error = null;
    $('error').hidden = true;
  }

  function busy(delta) {
    state.pending += delta;
    $('loading').hidden = state.pending <= 0;
  }

  const day = (iso) => String(iso).slice(0, 10);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fmt = (v, n) => (v === null || v === undefined || Number.isNaN(v) ? '—' : Number(v).toFixed(n === undefined ? 3 : n));

  function downloadBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  // --- map

  const geojson = new ol.format.GeoJSON({dataProjection: 'EPSG:4326', featureProjection: 'EPSG:3857'});

  /** An image source asking the Maps API for the current view (clipped to the area). */
  function mapSource(product, dateFn) {
    return new ol.source.Image({
      loader: async (extent, resolution, pixelRatio) => {
        const area = state.extent3857;
        const clip = area ? ol.extent.getIntersection(extent, area) : extent;
        const date = dateFn();
        if (!area || ol.extent.isEmpty(clip) || !date) {
          const blank = document.createElement('canvas');
          blank.width = blank.height = 1;
          return {image: blank, extent: extent, resolution: ol.extent.getWidth(extent), pixelRatio: 1};
        }
        let width = Math.max(1, Math.round(ol.extent.getWidth(clip) / resolution * pixelRatio));
        let height = Math.max(1, Math.round(ol.extent.getHeight(clip) / resolution * pixelRatio));
        const scale = Math.min(1, 2048 / Math.max(width, height));
        width = Math.max(1, Math.round(width * scale));
        height = Math.max(1, Math.round(height * scale));
        const url = api('collections/' + AREAS[state.area][product] + '/map?' + new URLSearchParams({
          bbox: clip.map((v) => v.toFixed(2)).join(','), 'bbox-crs': CRS3857,
          width: width, height: height, datetime: date,
        }));
        busy(1);
        try {
          const blob = await (await request(url)).blob();
          const image = await createImageBitmap(blob);
          return {image: image, extent: clip, pixelRatio: pixelRatio,
            resolution: [ol.extent.getWidth(clip) / width * pixelRatio, ol.extent.getHeight(clip) / height * pixelRatio]};
        } catch (err) {
          showError(err);
          throw err;
        } finally {
          busy(-1);
        }
      },
    });
  }

  const ZONE_COLOURS = {U: '#e53935', AU: '#fb8c00', A: '#fdd835', N: '#43a047'};
  const NDVI_RAMP = [[-0.2, [165, 0, 38]], [0.2, [244, 109, 67]], [0.4, [254, 224, 139]],
    [0.6, [166, 217, 106]], [0.8, [26, 152, 80]], [1.0, [0, 104, 55]]];

  function rampColour(v, alpha) {
    if (v === null || v === undefined || Number.isNaN(v)) return 'rgba(128,128,128,' + alpha + ')';
    let c = NDVI_RAMP[NDVI_RAMP.length - 1][1];
    for (let i = 1; i < NDVI_RAMP.length; i++) {
      const [v0, c0] = NDVI_RAMP[i - 1];
      const [v1, c1] = NDVI_RAMP[i];
      if (v <= v0) { c = c0; break; }
      if (v <= v1) {
        const f = (v - v0) / (v1 - v0);
        c = c0.map((x, k) => Math.round(x + f * (c1[k] - x)));
        break;
      }
    }
    return 'rgba(' + c.join(',') + ',' + alpha + ')';
  }

  const isSelected = (f) => state.selection && state.selection.feature === f;
  const HIT_FILL = new ol.style.Fill({color: 'rgba(0,0,0,0.01)'}); // clickable inside
  const SELECTED = new ol.style.Style({stroke: new ol.style.Stroke({color: '#00e5ff', width: 3}),
    fill: new ol.style.Fill({color: 'rgba(0,229,255,0.15)'}), zIndex: 10});

  const layers = {
    s2: new ol.layer.Image({source: mapSource('s2', () => state.date), properties: {name: 's2'}}),
    ndvi: new ol.layer.Image({source: mapSource('ndvi', () => state.date), visible: false, opacity: 0.85,
      properties: {name: 'ndvi'}}),
    cmpLeft: new ol.layer.Image({visible: false, properties: {name: 'compare-left'}}),
    cmpRight: new ol.layer.Image({visible: false, properties: {name: 'compare-right'}}),
    resultImage: new ol.layer.Image({opacity: 0.85, properties: {name: 'result-image'}}),
    communes: new ol.layer.Vector({source: new ol.source.Vector(), properties: {name: 'communes'},
      style: (f, res) => (isSelected(f) ? SELECTED : new ol.style.Style({
        stroke: new ol.style.Stroke({color: '#ffffff', width: 2.5}), fill: HIT_FILL,
        text: res < 60 ? new ol.style.Text({text: f.get('name') || '', font: 'bold 12px sans-serif',
          fill: new ol.style.Fill({color: '#fff'}), stroke: new ol.style.Stroke({color: '#000', width: 3})}) : undefined,
      }))}),
    zones: new ol.layer.Vector({source: new ol.source.Vector(), visible: false, properties: {name: 'zones'},
      style: (f) => (isSelected(f) ? SELECTED : new ol.style.Style({
        stroke: new ol.style.Stroke({color: ZONE_COLOURS[f.get('zone')] || '#999', width: 1.5}),
        fill: new ol.style.Fill({color: (ZONE_COLOURS[f.get('zone')] || '#999999') + '40'}),
      }))}),
    parcels: new ol.layer.Vector({source: new ol.source.Vector(), properties: {name: 'parcels'},
      style: (f) => (isSelected(f) ? SELECTED : new ol.style.Style({
        stroke: new ol.style.Stroke({color: 'rgba(255,235,59,0.6)', width: 1}),
        fill: f.get('_value') !== undefined ? new ol.style.Fill({color: rampColour(f.get('_value'), 0.75)}) : HIT_FILL,
      }))}),
    resultVector: new ol.layer.Vector({source: new ol.source.Vector(), properties: {name: 'result-vector'},
      style: (f) => {
        const gain = f.get('type') === 'gain';
        return new ol.style.Style({
          stroke: new ol.style.Stroke({color: gain ? '#00c853' : '#ff1744', width: 2.5}),
          fill: new ol.style.Fill({color: gain ? 'rgba(0,200,83,0.35)' : 'rgba(255,23,68,0.35)'}),
        });
      }}),
  };

  const map = new ol.Map({
    target: 'map',
    layers: [layers.s2, layers.ndvi, layers.cmpLeft, layers.cmpRight, layers.resultImage,
      layers.communes, layers.zones, layers.parcels, layers.resultVector],
    view: new ol.View({center: ol.proj.fromLonLat([-1.55, 48.1]), zoom: 13, maxZoom: 19}),
  });
  map.addControl(new ol.control.ScaleLine());

  function refreshImages() {
    layers.s2.setSource(mapSource('s2', () => state.date));
    layers.ndvi.setSource(mapSource('ndvi', () => state.date));
    if (state.compare) startCompare();
  }

  // layer switches
  [['lyr-s2', 's2'], ['lyr-ndvi', 'ndvi'], ['lyr-parcels', 'parcels'], ['lyr-communes', 'communes'],
    ['lyr-zones', 'zones']].forEach(([id, name]) => {
    $(id).addEventListener('change', () => {
      layers[name].setVisible($(id).checked && !(state.compare && (name === 's2' || name === 'ndvi')));
      updateLegend();
    });
  });

  function updateLegend() {
    const show = $('lyr-ndvi').checked;
    $('legend').hidden = !show;
    if (show) $('legend').src = api('collections/' + AREAS[state.area].ndvi + '/map/legend');
  }

  // --- area, dates and vectors

  async function loadFeatures(collection) {
    let url = api('collections/' + collection + '/items?f=json&limit=1000');
    const features = [];
    for (let page = 0; url && page < 100; page++) {
      const fc = await getJSON(url);
      features.push(...geojson.readFeatures(fc));
      const next = (fc.links || []).find((l) => l.rel === 'next');
      url = next && fc.features.length ? next.href : null;
    }
    return features;
  }

  function renderDates() {
    const fill = (select, value) => {
      select.innerHTML = '';
      state.dates.forEach((d) => {
        const opt = document.createElement('option');
        opt.value = d;
        opt.textContent = state.clouds[d] !== undefined ? t('date.cloud', {date: d, cloud: Math.round(state.clouds[d])}) : d;
        select.appendChild(opt);
      });
      if (value) select.value = value;
    };
    fill($('date'), state.date);
    fill($('cmp-left'), $('cmp-left').value || state.date);
    fill($('cmp-right'), $('cmp-right').value || state.date);
  }

  async function loadArea() {
    document.body.dataset.ready = '0';
    const cfg = AREAS[state.area];
    clearSelection();
    clearResult();
    updateUrl();
    busy(1);
    try {
      const meta = await getJSON('collections/' + cfg.s2 + '?f=json');
      state.extent84 = meta.extent.spatial.bbox[0];
      state.extent3857 = ol.proj.transformExtent(state.extent84, 'EPSG:4326', 'EPSG:3857');
      const temporal = meta.extent.temporal || {};
      const coords = (temporal.grid && temporal.grid.coordinates) || (temporal.interval || [[]])[0] || [];
      state.dates = [...new Set(coords.filter(Boolean).map(day))].sort();
      state.clouds = {};
      try { // tile cloud cover from the scene records (OGC API Records)
        const recs = await getJSON('collections/sentinel-2-l2a/items?f=json&limit=100&bbox=' + state.extent84.join(','));
        recs.features.forEach((r) => {
          const d = day(r.properties.datetime || (r.properties.time || {}).date);
          if (r.properties['eo:cloud_cover'] !== undefined) state.clouds[d] = r.properties['eo:cloud_cover'];
        });
      } catch (err) { console.warn('records', err); }
      const clear = state.dates.filter((d) => state.clouds[d] !== undefined && state.clouds[d] <= 20);
      state.date = clear.length ? clear[clear.length - 1] : state.dates[state.dates.length - 1];
      renderDates();
      // comparison defaults: a date in the "before" and in the "after" month of the area
      // (the territory's change preset, else its first and latest dates)
      const before = cfg.before || state.dates[0] || '';
      const after = cfg.after || state.date || '';
      const pick = (period, fallback) => state.dates.find((d) => d.startsWith(period.slice(0, 7))) || fallback;
      $('cmp-left').value = pick(before, state.dates[0] || '');
      $('cmp-right').value = pick(after, state.date || '');
      $('an-datetime').value = state.date || '';
      $('an-before').value = before;
      $('an-after').value = after;
      $('an-threshold').value = cfg.threshold;
      $('lyr-zones-label').hidden = !cfg.zones;
      map.getView().fit(state.extent3857, {padding: [10, 10, 10, 10]});
      refreshImages();
      updateLegend();
      renderGis();
      const [parcels, communes, zones] = await Promise.all([
        loadFeatures(cfg.parcels), loadFeatures(cfg.communes), cfg.zones ? loadFeatures(cfg.zones) : []]);
      parcels.forEach((f) => f.set('_kind', 'parcel'));
      communes.forEach((f) => f.set('_kind', 'commune'));
      zones.forEach((f) => f.set('_kind', 'zone'));
      layers.parcels.getSource().clear();
      layers.parcels.getSource().addFeatures(parcels);
      layers.communes.getSource().clear();
      layers.communes.getSource().addFeatures(communes);
      layers.zones.getSource().clear();
      layers.zones.getSource().addFeatures(zones);
      const select = $('commune');
      select.innerHTML = '<option value=""></option>';
      communes.slice().sort((a, b) => String(a.get('name')).localeCompare(String(b.get('name')), 'fr'))
        .forEach((f) => {
          const opt = document.createElement('option');
          opt.value = f.get('code') || f.getId();
          opt.textContent = f.get('name') + ' (' + opt.value + ')';
          select.appendChild(opt);
        });
      document.body.dataset.ready = '1';
    } catch (err) {
      showError(err);
    } finally {
      busy(-1);
    }
  }

  $('area').addEventListener('change', () => { state.area = $('area').value; stopCompare(); loadArea(); });
  $('date').addEventListener('change', () => {
    state.date = $('date').value;
    $('an-datetime').value = state.date;
    refreshImages();
    renderGis();
  });

  // --- selection: properties, time series, CSV

  let chart = null;

  function clearSelection() {
    state.selection = null;
    state.series = null;
    state.commune = null;
    $('selection').hidden = true;
    $('commune').value = '';
    $('scope-commune').textContent = '';
    layers.parcels.changed();
    layers.communes.changed();
    layers.zones.changed();
  }

  const KINDS = {
    parcel: {layer: 'parcels', key: 'id'},
    zone: {layer: 'zones', key: 'id'},
    commune: {layer: 'communes', key: 'code'},
  };

  async function select(feature) {
    const kind = feature.get('_kind');
    const cfg = AREAS[state.area];
    const collection = kind === 'parcel' ? cfg.parcels : kind === 'zone' ? cfg.zones : cfg.communes;
    const value = String(feature.get(KINDS[kind].key) || feature.getId());
    const token = {};
    state.selection = {feature: feature, kind: kind, collection: collection, id: value, token: token};
    state.series = null;
    if (kind === 'commune') {
      state.commune = feature;
      $('commune').value = value;
      $('scope-commune').textContent = '(' + feature.get('name') + ')';
    }
    layers[KINDS[kind].layer].changed();
    ['parcels', 'communes', 'zones'].forEach((n) => layers[n].changed());
    $('selection').hidden = false;
    $('selection').dataset.state = 'loading';
    renderSelection();
    const variable = $('variable').value;
    const body = {inputs: {
      zones: {collection: collection, filter: KINDS[kind].key + " = '" + value.replace(/'/g, "''") + "'"},
      datetime: state.dates[0] + '/' + state.dates[state.dates.length - 1],
      variable: variable, temporal: 'series', statistics: ['mean', 'std', 'count', 'valid_fraction'],
    }};
    busy(1);
    try {
      const fc = await (await postProcess('zonal-statistics', body, false)).json();
      if (state.selection.token !== token) return; // another click meanwhile
      const feat = (fc.features || [])[0];
      state.series = {variable: variable, id: value, kind: kind,
        points: ((feat && feat.properties.series) || []).filter((p) => p.mean !== null && p.mean !== undefined)};
      $('selection').dataset.state = 'done';
    } catch (err) {
      if (state.selection.token === token) $('selection').dataset.state = 'error';
      showError(err);
    } finally {
      busy(-1);
      renderSelection();
    }
  }

  function renderSelection() {
    const sel = state.selection;
    if (!sel) return;
    const props = sel.feature.getProperties();
    const name = props.name ? props.name + ' (' + sel.id + ')' : sel.id;
    $('sel-title').textContent = t('kind.' + sel.kind) + ' ' + name;
    $('use-commune').hidden = sel.kind !== 'commune';
    const tbody = $('props').querySelector('tbody');
    tbody.innerHTML = '';
    Object.keys(props).filter((k) => k !== 'geometry' && !k.startsWith('_')).forEach((k) => {
      const tr = document.createElement('tr');
      const a = document.createElement('td');
      const b = document.createElement('td');
      a.textContent = k;
      b.textContent = props[k];
      tr.append(a, b);
      tbody.appendChild(tr);
    });
    const series = state.series;
    const loading = $('selection').dataset.state === 'loading';
    $('csv').disabled = !series || !series.points.length;
    $('series-status').textContent = loading ? t('select.loading')
      : series ? (series.points.length ? t('select.points', {n: series.points.length}) : t('select.none')) : '';
    const points = series ? series.points : [];
    const data = {
      labels: points.map((p) => day(p.datetime)),
      datasets: [{label: t('select.mean', {variable: series ? series.variable : $('variable').value}),
        data: points.map((p) => p.mean), borderColor: '#2e7d32', backgroundColor: 'rgba(46,125,50,0.15)',
        fill: true, tension: 0.2, pointRadius: 3}],
    };
    if (!chart) {
      chart = new Chart($('chart'), {type: 'line', data: data, options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {y: {suggestedMin: 0, suggestedMax: 1}},
        plugins: {legend: {labels: {boxWidth: 12}}}}});
    } else {
      chart.data = data;
      chart.update();
    }
  }

  function exportCsv() {
    const s = state.series;
    if (!s) return;
    const cols = ['id', 'datetime', 'item', 'variable', 'mean', 'std', 'count', 'valid_fraction'];
    const esc = (v) => (v === null || v === undefined ? '' : /[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v));
    const lines = [cols.join(',')].concat(s.points.map((p) => cols.map((c) =>
      esc(c === 'id' ? s.id : c === 'variable' ? s.variable : p[c])).join(',')));
    downloadBlob(new Blob([lines.join('\n') + '\n'], {type: 'text/csv;charset=utf-8'}),
      s.variable.toLowerCase() + '-' + s.kind + '-' + s.id + '.csv');
  }

  $('csv').addEventListener('click', exportCsv);
  $('variable').addEventListener('change', () => { if (state.selection) select(state.selection.feature); });
  $('commune').addEventListener('change', () => {
    const code = $('commune').value;
    const f = layers.communes.getSource().getFeatures().find((x) => String(x.get('code') || x.getId()) === code);
    if (!f) { clearSelection(); return; }
    map.getView().fit(f.getGeometry().getExtent(), {padding: [30, 30, 30, 30], duration: 300});
    select(f);
  });
  $('use-commune').addEventListener('click', () => {
    document.querySelector('input[name=scope][value=commune]').checked = true;
    showTab('analysis');
  });

  map.on('singleclick', (evt) => {
    let hit = null;
    map.forEachFeatureAtPixel(evt.pixel, (f) => { hit = f; return true; }, {
      layerFilter: (l) => l === layers.parcels || l === layers.zones || l === layers.communes,
      hitTolerance: 2,
    });
    if (hit) {
      showTab('select');
      select(hit);
    }
  });
  map.on('pointermove', (evt) => {
    if (evt.dragging) return;
    const hit = map.hasFeatureAtPixel(evt.pixel, {
      layerFilter: (l) => l === layers.parcels || l === layers.zones || l === layers.communes});
    map.getTargetElement().style.cursor = hit ? 'pointer' : '';
  });

  // --- analyses: asynchronous jobs

  function scope() { return document.querySelector('input[name=scope]:checked').value; }

  /** The area of an analysis: {input, extent3857, bbox84} or null (error shown). */
  function analysisArea() {
    const cfg = AREAS[state.area];
    if (scope() === 'commune') {
      if (!state.commune) { showError({local: true, detail: t('an.nocommune')}); return null; }
      const code = String(state.commune.get('code') || state.commune.getId());
      const extent = state.commune.getGeometry().getExtent();
      return {input: {collection: cfg.communes, id: code}, extent3857: extent,
        bbox84: ol.proj.transformExtent(extent, 'EPSG:3857', 'EPSG:4326'), commune: code};
    }
    const view = map.getView().calculateExtent(map.getSize());
    const clip = ol.extent.getIntersection(view, state.extent3857);
    const bbox = ol.proj.transformExtent(clip, 'EPSG:3857', 'EPSG:4326').map((v) => Math.round(v * 1e6) / 1e6);
    return {input: bbox, extent3857: clip, bbox84: bbox};
  }

  function buildRequest(pid, area) {
    const cfg = AREAS[state.area];
    const index = $('an-index').value;
    const dt = $('an-datetime').value.trim() || state.date;
    if (pid === 'spectral-index') {
      return {inputs: {area: area.input, datetime: dt, index: index, crs: 'EPSG:3857', format: 'png'}};
    }
    if (pid === 'zonal-statistics') {
      const zones = area.commune ? {collection: cfg.parcels, filter: "commune = '" + area.commune + "'"}
        : {collection: cfg.parcels, bbox: area.bbox84};
      return {inputs: {zones: zones, datetime: dt, variable: index, format: 'geojson'}};
    }
    if (pid === 'change-detection') {
      const inputs = {area: area.input, before: $('an-before').value.trim(), after: $('an-after').value.trim(),
        index: index, crs: 'EPSG:3857'};
      const th = parseFloat($('an-threshold').value);
      if (!Number.isNaN(th)) inputs.threshold = th;
      return {inputs: inputs};
    }
    return {inputs: {area: area.input, datetime: dt, method: $('an-method').value, crs: 'EPSG:3857'}};
  }

  function updateProcessForm() {
    const pid = $('process').value;
    document.querySelectorAll('#tab-analysis .p-only').forEach((el) => {
      el.hidden = !el.dataset.for.split(' ').includes(pid);
    });
  }
  $('process').addEventListener('change', updateProcessForm);

  function renderJob() {
    const job = state.job;
    $('job').hidden = !job;
    if (!job) return;
    const s = job.status;
    $('job-id').textContent = s.jobID || '';
    $('job-status').textContent = t('status.' + s.status);
    const p = Math.max(0, Math.min(100, Number(s.progress) || 0));
    const bar = $('job-bar');
    bar.style.width = p + '%';
    bar.textContent = p + ' %';
    bar.setAttribute('aria-valuenow', p);
    bar.classList.toggle('bg-danger', s.status === 'failed');
    bar.classList.toggle('bg-success', s.status === 'successful');
    bar.classList.toggle('progress-bar-striped', s.status === 'running');
    bar.classList.toggle('progress-bar-animated', s.status === 'running');
    $('job-message').textContent = s.message || '';
    $('job-log').innerHTML = '';
    job.log.forEach((e) => {
      const li = document.createElement('li');
      li.dataset.status = e.status;
      li.dataset.progress = e.progress;
      li.textContent = e.time + ' — ' + t('status.' + e.status) + ', ' + e.progress + ' %' + (e.message ? ' — ' + e.message : '');
      $('job-log').appendChild(li);
    });
  }

  function logJob(status) {
    const job = state.job;
    job.status = status;
    const last = job.log[job.log.length - 1];
    const p = Number(status.progress) || 0;
    if (!last || last.status !== status.status || last.progress !== p || last.message !== status.message) {
      job.log.push({time: new Date().toLocaleTimeString(state.lang === 'fr' ? 'fr-FR' : 'en-GB'),
        status: status.status, progress: p, message: status.message || ''});
    }
    renderJob();
  }

  async function runProcess() {
    clearError();
    const pid = $('process').value;
    const area = analysisArea();
    if (!area) return;
    const body = buildRequest(pid, area);
    clearResult();
    $('run').disabled = true;
    busy(1);
    try {
      const resp = await postProcess(pid, body, true);
      const first = await resp.json();
      const location = resp.headers.get('Location') || api('jobs/' + first.jobID);
      state.job = {pid: pid, body: body, area: area, location: location, log: [], status: first};
      logJob(first);
      let status = first;
      while (!['successful', 'failed', 'dismissed'].includes(status.status)) {
        await sleep(400);
        status = await getJSON(location + (location.includes('?') ? '&' : '?') + 'f=json');
        logJob(status);
      }
      if (status.status !== 'successful') {
        const err = new Error(status.message || status.status);
        err.job = true;
        err.detail = status.message || t('status.' + status.status);
        throw err;
      }
      const res = await request(location + '/results?f=json', {headers: {Accept: 'application/json'}});
      const type = res.headers.get('Content-Type') || '';
      const result = type.includes('json') ? await res.json() : await res.blob();
      showResult(pid, body, area, location, result);
    } catch (err) {
      showError(err);
    } finally {
      busy(-1);
      $('run').disabled = false;
    }
  }
  $('run').addEventListener('click', runProcess);

  function b64Blob(value, type) {
    const bin = atob(value);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Blob([bytes], {type: type});
  }

  const EXT = {'image/png': 'png', 'image/tiff': 'tif', 'application/geo+json': 'geojson', 'text/csv': 'csv',
    'application/json': 'json'};
  const extOf = (type) => EXT[String(type).split(';')[0].trim()] || 'bin';

  /** Place a PNG (made on an EPSG:3857 grid snapped to the 10 m resolution) on the map. */
  function showImage(blob, extent) {
    const e = [Math.floor(extent[0] / 10) * 10, Math.floor(extent[1] / 10) * 10,
      Math.ceil(extent[2] / 10) * 10, Math.ceil(extent[3] / 10) * 10];
    const url = URL.createObjectURL(blob);
    layers.resultImage.setSource(new ol.source.ImageStatic({url: url, imageExtent: e, projection: 'EPSG:3857'}));
  }

  function showResult(pid, body, area, location, result) {
    const downloads = []; // {name, blob} or {name, fetch: () => Promise<Blob>}
    const stem = pid + '-' + state.area;
    const rerun = (inputs, ext) => ({name: stem + '.' + ext, fetch: async () =>
      (await postProcess(pid, {inputs: inputs, response: 'raw'}, false)).blob()});
    let summary = {};
    if (result instanceof Blob) { // a single output, served as is (spectral-index PNG)
      showImage(result, area.extent3857);
      downloads.push({name: stem + '.png', blob: result});
      downloads.push(rerun(Object.assign({}, body.inputs, {format: 'geotiff'}), 'tif'));
      summary = {key: 'an.index.done', vars: {index: body.inputs.index}};
    } else if (result.type === 'FeatureCollection') { // zonal statistics per parcel
      const values = {};
      result.features.forEach((f) => { values[f.id] = f.properties.mean; });
      layers.parcels.getSource().getFeatures().forEach((f) => {
        if (Object.prototype.hasOwnProperty.call(values, f.getId())) f.set('_value', values[f.getId()]);
      });
      const means = Object.values(values).filter((v) => v !== null && v !== undefined);
      downloads.push({name: stem + '.geojson', blob: new Blob([JSON.stringify(result)], {type: 'application/geo+json'})});
      downloads.push(rerun(Object.assign({}, body.inputs, {format: 'csv'}), 'csv'));
      summary = {key: 'an.zonal', vars: {n: result.features.length, variable: body.inputs.variable,
        mean: fmt(means.reduce((a, b) => a + b, 0) / (means.length || 1))}};
    } else { // several outputs: JSON with inline values (base64 for rasters)
      Object.keys(result).forEach((key) => {
        const v = result[key];
        if (v && v.encoding === 'base64') {
          const blob = b64Blob(v.value, v.mediaType);
          downloads.push({name: stem + '-' + key + '.' + extOf(v.mediaType), label: key + '.' + extOf(v.mediaType), blob: blob});
          if (key === 'png' && pid === 'classification') showImage(blob, area.extent3857);
        } else {
          const type = v && v.type === 'FeatureCollection' ? 'application/geo+json' : 'application/json';
          downloads.push({name: stem + '-' + key + '.' + extOf(type), label: key + '.' + extOf(type), blob: new Blob([JSON.stringify(v, null, 1)], {type: type})});
        }
      });
      if (result.changes) {
        layers.resultVector.getSource().addFeatures(geojson.readFeatures(result.changes));
        const total = (result.summary || {}).total || {};
        summary = {key: 'an.changes', vars: {n: result.changes.features.length, loss: fmt(total.loss_ha, 1),
          gain: fmt(total.gain_ha, 1), threshold: (result.summary || {}).threshold}};
      }
      if (pid === 'classification' && result.summary) summary = {legend: result.summary};
    }
    downloads.push({name: 'results.json', href: location + '/results?f=json'});
    state.result = {pid: pid, summary: summary, downloads: downloads, location: location};
    renderResult();
  }

  function renderResult() {
    const r = state.result;
    $('result').hidden = !r;
    if (!r) return;
    $('result-summary').textContent = r.summary.key ? t(r.summary.key, r.summary.vars) : '';
    const legend = $('result-legend');
    legend.innerHTML = '';
    if (r.summary.legend) {
      const areas = {};
      (r.summary.legend.areas || []).forEach((a) => { areas[a.code] = a.area_ha; });
      const title = document.createElement('div');
      title.textContent = t('an.classes');
      legend.appendChild(title);
      (r.summary.legend.legend || []).forEach((c) => {
        const row = document.createElement('div');
        const sw = document.createElement('span');
        sw.className = 'legend-swatch';
        sw.style.background = c.colour;
        row.appendChild(sw);
        row.appendChild(document.createTextNode((c.name[state.lang] || c.name.fr || c.code) + ' — ' + fmt(areas[c.code], 1) + ' ha'));
        legend.appendChild(row);
      });
    }
    const box = $('downloads');
    box.innerHTML = '';
    r.downloads.forEach((d) => {
      const a = document.createElement('a');
      a.className = 'btn btn-sm btn-outline-secondary';
      a.textContent = d.label || d.name;
      a.title = d.name;
      if (d.blob) {
        a.href = d.url || (d.url = URL.createObjectURL(d.blob));
        a.download = d.name;
      } else if (d.href) {
        a.href = d.href;
        a.target = '_blank';
      } else {
        a.href = '#';
        a.addEventListener('click', async (ev) => {
          ev.preventDefault();
          busy(1);
          try { downloadBlob(await d.fetch(), d.name); } catch (err) { showError(err); } finally { busy(-1); }
        });
      }
      box.appendChild(a);
    });
  }

  function clearResult() {
    state.result = null;
    layers.resultVector.getSource().clear();
    layers.resultImage.setSource(null);
    layers.parcels.getSource().getFeatures().forEach((f) => f.unset('_value', true));
    layers.parcels.changed();
    renderResult();
  }
  $('clear-result').addEventListener('click', clearResult);

  // --- comparison of two dates (swipe)

  function renderCompareButton() {
    $('cmp-toggle').textContent = t(state.compare ? 'compare.stop' : 'compare.start');
  }

  function startCompare() {
    const product = $('cmp-product').value;
    const left = $('cmp-left').value;
    const right = $('cmp-right').value;
    layers.cmpLeft.setSource(mapSource(product, () => left));
    layers.cmpRight.setSource(mapSource(product, () => right));
    layers.cmpLeft.setVisible(true);
    layers.cmpRight.setVisible(true);
    layers.s2.setVisible(false);
    layers.ndvi.setVisible(false);
    $('swipe-left').textContent = left;
    $('swipe-right').textContent = right;
    $('swipe-box').hidden = false;
    state.compare = true;
    renderCompareButton();
  }

  function stopCompare() {
    state.compare = false;
    layers.cmpLeft.setVisible(false);
    layers.cmpRight.setVisible(false);
    layers.s2.setVisible($('lyr-s2').checked);
    layers.ndvi.setVisible($('lyr-ndvi').checked);
    $('swipe-box').hidden = true;
    renderCompareButton();
  }

  $('cmp-toggle').addEventListener('click', () => (state.compare ? stopCompare() : startCompare()));
  ['cmp-left', 'cmp-right', 'cmp-product'].forEach((id) => $(id).addEventListener('change', () => {
    if (state.compare) startCompare();
  }));
  $('swipe').addEventListener('input', () => map.render());

  // the right-hand date is only drawn to the right of the slider
  layers.cmpRight.on('prerender', (event) => {
    const ctx = event.context;
    const size = map.getSize();
    const x = size[0] * ($('swipe').value / 100);
    const tl = ol.render.getRenderPixel(event, [x, 0]);
    const tr = ol.render.getRenderPixel(event, [size[0], 0]);
    const bl = ol.render.getRenderPixel(event, [x, size[1]]);
    const br = ol.render.getRenderPixel(event, size);
    ctx.save();
    ctx.beginPath();
    ctx.moveTo(tl[0], tl[1]);
    ctx.lineTo(bl[0], bl[1]);
    ctx.lineTo(br[0], br[1]);
    ctx.lineTo(tr[0], tr[1]);
    ctx.closePath();
    ctx.clip();
  });
  layers.cmpRight.on('postrender', (event) => {
    const ctx = event.context;
    ctx.restore();
    const size = map.getSize();
    const x = size[0] * ($('swipe').value / 100);
    const top = ol.render.getRenderPixel(event, [x, 0]);
    const bottom = ol.render.getRenderPixel(event, [x, size[1]]);
    ctx.save();
    ctx.strokeStyle = '#ffffff';
    ctx.lineWidth = 2 * (event.frameState.pixelRatio || 1);
    ctx.beginPath();
    ctx.moveTo(top[0], top[1]);
    ctx.lineTo(bottom[0], bottom[1]);
    ctx.stroke();
    ctx.restore();
  });

  // --- links for QGIS

  function renderGis() {
    const box = $('gis-links');
    box.innerHTML = '';
    const view = state.extent3857 && map.getSize() ? ol.extent.getIntersection(
      map.getView().calculateExtent(map.getSize()), state.extent3857) : null;
    const mapUrl = view && !ol.extent.isEmpty(view) ? ROOT + '/collections/' + AREAS[state.area].ndvi + '/map?' +
      new URLSearchParams({bbox: view.map((v) => v.toFixed(0)).join(','), 'bbox-crs': CRS3857,
        width: 1024, height: Math.round(1024 * ol.extent.getHeight(view) / ol.extent.getWidth(view)),
        datetime: state.date || ''}) : '';
    const items = [
      ['gis-wms', t('gis.wms'), ROOT + '/wms'],
      ['gis-ogc', t('gis.ogc'), ROOT],
      ['gis-layers', t('gis.layers'), state.area + ':OI.OrthoimageCoverage, ' + state.area + ':NDVI'],
    ];
    if (mapUrl) items.push(['gis-map', t('gis.map'), mapUrl]);
    items.forEach(([id, label, value]) => {
      const div = document.createElement('div');
      div.className = 'gis-link';
      const lab = document.createElement('label');
      lab.className = 'small d-block';
      lab.htmlFor = id;
      lab.textContent = label;
      const group = document.createElement('div');
      group.className = 'input-group input-group-sm';
      const input = document.createElement('input');
      input.className = 'form-control';
      input.id = id;
      input.readOnly = true;
      input.value = value;
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'btn btn-outline-primary copy';
      btn.textContent = t('gis.copy');
      btn.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(value);
        } catch (e) {
          input.select();
          document.execCommand('copy');
        }
        btn.textContent = t('gis.copied');
        setTimeout(() => { btn.textContent = t('gis.copy'); }, 1500);
      });
      group.append(input, btn);
      div.append(lab, group);
      box.appendChild(div);
    });
  }
  map.on('moveend', () => { if (!$('tab-gis').hidden) renderGis(); });

  // --- tabs, language, start

  function showTab(name) {
    document.querySelectorAll('#panel [data-tab]').forEach((b) => {
      b.classList.toggle('active', b.dataset.tab === name);
      b.setAttribute('aria-selected', b.dataset.tab === name);
    });
    document.querySelectorAll('#panel .tab').forEach((s) => { s.hidden = s.id !== 'tab-' + name; });
    if (name === 'gis') renderGis();
  }
  document.querySelectorAll('#panel [data-tab]').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab)));
  document.querySelectorAll('.lang-switch [data-lang]').forEach((b) => b.addEventListener('click', () => {
    state.lang = b.dataset.lang;
    applyLang();
  }));
  $('error-close').addEventListener('click', clearError);

  // for tests and power users (browser console)
  window.sentinelle = {
    state: state, map: map, layers: layers, t: t, chart: () => chart, select: select,
    pixelOf: (lon, lat) => map.getPixelFromCoordinate(ol.proj.fromLonLat([lon, lat])),
    fitLonLat: (bbox) => map.getView().fit(ol.proj.transformExtent(bbox, 'EPSG:4326', 'EPSG:3857')),
    INDICES: INDICES,
  };

  function renderAreas() {
    const select = $('area');
    select.replaceChildren(...Object.values(AREAS).map((area) => {
      const option = document.createElement('option');
      option.value = area.id;
      option.textContent = area.title[state.lang] || area.title.fr;
      return option;
    }));
    select.value = state.area;
  }

  async function start() {
    try {
      const doc = await getJSON('dashboard/territories.json');
      doc.territories.forEach((area) => { AREAS[area.id] = area; });
    } catch (err) {
      showError(err);
      return;
    }
    if (!AREAS[state.area]) state.area = Object.keys(AREAS)[0];
    if (!state.area) return;
    renderAreas();
    updateProcessForm();
    applyLang();
    loadArea();
  }

  start();
})();
