// The page's words, in English and Spanish. Short, plain sentences for someone frightened,
// in the dark, with one hand: what is happening, what is safe, what to do.

/** @typedef {'en' | 'es'} Lang */

/** @type {Record<Lang, Record<string, string>>} */
export const STRINGS = {
  en: {
    'app.title': 'custody',
    'lang.toggle': 'Español',
    'loading': 'Opening…',

    'enroll.title': 'Connect to your legal team',
    'enroll.intro': 'This phone will record video, lock it with the legal team’s key and send it to them while you record. Nobody else can play it, not even this phone.',
    'enroll.server': 'Server key it will check',
    'enroll.nolink': 'Open the link your legal team gave you, or paste it here.',
    'enroll.paste': 'Link from your legal team',
    'enroll.button': 'Allow camera and connect',
    'enroll.step.permission': 'Asking for the camera and microphone…',
    'enroll.step.enrolling': 'Connecting to the legal team…',
    'enroll.permission.denied': 'The camera or microphone was not allowed. Allow them for this site in the browser settings, then try again.',
    'enroll.permission.none': 'This browser cannot use the camera here.',
    'enroll.iphone': 'On iPhone: an app added to the Home Screen and Safari keep separate storage. Connect in the one you will record with.',
    'enroll.done': 'Connected. You can record now.',

    'error.link.invalid': 'This link is not a valid enrollment link. Ask your legal team for a new one.',
    'error.server.fingerprint.mismatch': 'Wrong server: this server’s key is not the one in your link. Nothing was sent. Check the link with your legal team.',
    'error.recipients.forged': 'The server’s answer was not signed by the key in your link. Nothing was recorded. Tell your legal team.',
    'error.network': 'No connection to the legal team’s server. Check your signal and try again.',
    'error.enroll.token.used': 'This link was already used. Each link works once: ask your legal team for a new one.',
    'error.enroll.token.expired': 'This link has expired. Ask your legal team for a new one.',
    'error.enroll.token.unknown': 'The server does not know this link. Ask your legal team for a new one.',
    'error.quota': 'This phone’s storage is full. Everything already sealed is kept; free some space to record more.',
    'error.camera': 'The camera could not start: {detail}',
    'error.unknown': 'Something went wrong: {detail}',

    'record.start': 'Record',
    'record.stop': 'Stop',
    'record.photo': 'Photo of a paper',
    'record.idle': 'Ready to record',
    'record.recording': 'Recording',
    'record.sealed': 'Sealed: {n}',
    'record.receipted': 'With the legal team: {n}',
    'record.safe': 'Safe with the legal team up to {time}',
    'record.safe.none': 'Nothing with the legal team yet',
    'record.waiting': 'Waiting to send: {n} ({size})',
    'record.online': 'Online',
    'record.offline': 'Offline: everything is kept on this phone and sent when the connection is back',
    'record.storage': 'Storage: {used} used of {quota}',
    'record.storage.persisted': 'kept by the browser',
    'record.storage.notpersisted': 'the browser may clear it when space is short',
    'record.stopped.background': 'Recording stopped: the page went to the background or the screen locked. What was recorded is sealed.',
    'record.again': 'Record again',
    'record.photo.sealed': 'Photo sealed',
    'record.photo.busy': 'Taking the photo…',
    'record.ended': 'Recording saved and sealed',
    'record.what.stops': 'Recording stops if you lock the screen or leave this page.',
    'record.inconsistent': 'Warning: the server’s log does not match what this phone saw before. Uploading stopped; everything is kept. Tell your legal team.',
    'record.wakelock.none': 'Keep the screen on: this browser may lock it.',
    'record.bitrate': 'Slow connection: recording at lower quality',
  },
  es: {
    'app.title': 'custody',
    'lang.toggle': 'English',
    'loading': 'Abriendo…',

    'enroll.title': 'Conéctese con su equipo legal',
    'enroll.intro': 'Este teléfono grabará video, lo cerrará con la clave del equipo legal y se lo enviará mientras graba. Nadie más puede verlo, ni siquiera este teléfono.',
    'enroll.server': 'Clave del servidor que comprobará',
    'enroll.nolink': 'Abra el enlace que le dio su equipo legal o péguelo aquí.',
    'enroll.paste': 'Enlace de su equipo legal',
    'enroll.button': 'Permitir cámara y conectar',
    'enroll.step.permission': 'Pidiendo la cámara y el micrófono…',
    'enroll.step.enrolling': 'Conectando con el equipo legal…',
    'enroll.permission.denied': 'No se permitió la cámara o el micrófono. Permítalos para este sitio en los ajustes del navegador e inténtelo de nuevo.',
    'enroll.permission.none': 'Este navegador no puede usar la cámara aquí.',
    'enroll.iphone': 'En iPhone: una app añadida a la pantalla de inicio y Safari guardan los datos por separado. Conéctese en la que usará para grabar.',
    'enroll.done': 'Conectado. Ya puede grabar.',

    'error.link.invalid': 'Este enlace no es un enlace de inscripción válido. Pida uno nuevo a su equipo legal.',
    'error.server.fingerprint.mismatch': 'Servidor equivocado: la clave de este servidor no es la de su enlace. No se envió nada. Compruebe el enlace con su equipo legal.',
    'error.recipients.forged': 'La respuesta del servidor no está firmada con la clave de su enlace. No se grabó nada. Avise a su equipo legal.',
    'error.network': 'No hay conexión con el servidor del equipo legal. Revise la señal e inténtelo de nuevo.',
    'error.enroll.token.used': 'Este enlace ya se usó. Cada enlace sirve una vez: pida uno nuevo a su equipo legal.',
    'error.enroll.token.expired': 'Este enlace ha caducado. Pida uno nuevo a su equipo legal.',
    'error.enroll.token.unknown': 'El servidor no conoce este enlace. Pida uno nuevo a su equipo legal.',
    'error.quota': 'El almacenamiento del teléfono está lleno. Todo lo ya sellado se conserva; libere espacio para grabar más.',
    'error.camera': 'La cámara no pudo arrancar: {detail}',
    'error.unknown': 'Algo salió mal: {detail}',

    'record.start': 'Grabar',
    'record.stop': 'Parar',
    'record.photo': 'Foto de un papel',
    'record.idle': 'Listo para grabar',
    'record.recording': 'Grabando',
    'record.sealed': 'Sellados: {n}',
    'record.receipted': 'Con el equipo legal: {n}',
    'record.safe': 'A salvo con el equipo legal hasta {time}',
    'record.safe.none': 'Aún nada con el equipo legal',
    'record.waiting': 'Por enviar: {n} ({size})',
    'record.online': 'En línea',
    'record.offline': 'Sin conexión: todo se guarda en este teléfono y se envía cuando vuelva la conexión',
    'record.storage': 'Almacenamiento: {used} usados de {quota}',
    'record.storage.persisted': 'el navegador lo conserva',
    'record.storage.notpersisted': 'el navegador puede borrarlo si falta espacio',
    'record.stopped.background': 'La grabación se detuvo: la página pasó a segundo plano o se bloqueó la pantalla. Lo grabado está sellado.',
    'record.again': 'Grabar de nuevo',
    'record.photo.sealed': 'Foto sellada',
    'record.photo.busy': 'Tomando la foto…',
    'record.ended': 'Grabación guardada y sellada',
    'record.what.stops': 'La grabación se detiene si bloquea la pantalla o sale de esta página.',
    'record.inconsistent': 'Atención: el registro del servidor no coincide con lo que este teléfono vio antes. Se detuvo el envío; todo se conserva. Avise a su equipo legal.',
    'record.wakelock.none': 'Mantenga la pantalla encendida: este navegador puede bloquearla.',
    'record.bitrate': 'Conexión lenta: grabando con menor calidad',
  },
};

/**
 * The language to start in: the first of the browser's preferred languages we have.
 * @param {readonly string[]} languages navigator.languages
 * @returns {Lang}
 */
export function pickLanguage(languages) {
  for (const tag of languages ?? []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (base === 'es') return 'es';
    if (base === 'en') return 'en';
  }
  return 'en';
}

/**
 * The text for `key` in `lang`, with `{name}` placeholders filled from `params`. A key
 * missing in Spanish falls back to English; a key missing in both is shown as itself, so a
 * slip is visible rather than blank.
 * @param {Lang} lang
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
export function t(lang, key, params = {}) {
  const text = STRINGS[lang]?.[key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * The message key for a DeviceError code (web-core's `Device.enroll` and friends).
 * @param {string | undefined} code
 */
export function errorKey(code) {
  if (!code) return 'error.unknown';
  // The protocol's refusal codes (protocol/src/code.rs).
  if (code === 'enroll.token_used') return 'error.enroll.token.used';
  if (code === 'enroll.token_expired') return 'error.enroll.token.expired';
  if (code === 'enroll.token_unknown') return 'error.enroll.token.unknown';
  if (code.startsWith('link.')) return 'error.link.invalid';
  if (code === 'server.fingerprint.mismatch' || code.startsWith('server.key')) return 'error.server.fingerprint.mismatch';
  if (code === 'recipients.forged' || code.startsWith('cert.') || code.startsWith('signature')) return 'error.recipients.forged';
  if (code === 'network' || code === 'timeout' || code.startsWith('network.')) return 'error.network';
  if (code === 'quota' || code === 'QuotaExceededError' || code.startsWith('store.quota')) return 'error.quota';
  return 'error.unknown';
}
