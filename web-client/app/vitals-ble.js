// Web Bluetooth sources of vital signs, where the browser offers navigator.bluetooth: the standard
// GATT services Heart Rate (0x180D), Pulse Oximeter (0x1822), Blood Pressure (0x1810) and Health
// Thermometer (0x1809). Same interface as the simulated device (vitals-sim.js); these devices
// give numerics only (no waveforms). The parsers are pure functions of the characteristic's bytes.

import { clock } from './vitals-sim.js';

/** @typedef {import('./vitals-sim.js').VitalsSource} VitalsSource */

export const SERVICES = Object.freeze({
  heart_rate: 0x180d,
  pulse_oximeter: 0x1822,
  blood_pressure: 0x1810,
  health_thermometer: 0x1809,
});

/** Measurement characteristic of each service, notified or indicated by the device. */
const MEASUREMENT = Object.freeze({
  heart_rate: 0x2a37,
  pulse_oximeter: 0x2a5f, // PLX continuous measurement
  blood_pressure: 0x2a35,
  health_thermometer: 0x2a1c,
});

/** IEEE 11073 16-bit SFLOAT. @param {DataView} v @param {number} at */
export function sfloat(v, at) {
  const raw = v.getUint16(at, true);
  let mantissa = raw & 0x0fff;
  let exponent = raw >> 12;
  if (mantissa >= 0x0800) mantissa -= 0x1000;
  if (exponent >= 0x08) exponent -= 0x10;
  if ([0x07ff, 0x0800, 0x07fe, 0x0802, 0x0801].includes(raw & 0x0fff) && exponent === 0) return NaN;
  return mantissa * 10 ** exponent;
}

/** IEEE 11073 32-bit FLOAT. @param {DataView} v @param {number} at */
export function float32(v, at) {
  const raw = v.getUint32(at, true);
  let mantissa = raw & 0x00ffffff;
  const exponent = (raw >> 24) << 24 >> 24;
  if (mantissa === 0x007fffff) return NaN;
  if (mantissa >= 0x00800000) mantissa -= 0x01000000;
  return mantissa * 10 ** exponent;
}

/** Heart Rate Measurement (0x2A37). @param {DataView} v */
export function parseHeartRate(v) {
  const flags = v.getUint8(0);
  return { hr: flags & 1 ? v.getUint16(1, true) : v.getUint8(1) };
}

/** PLX Continuous Measurement (0x2A5F): SpO2 and pulse rate. @param {DataView} v */
export function parsePlxContinuous(v) {
  return { spo2: sfloat(v, 1), hr: sfloat(v, 3) };
}

/** Blood Pressure Measurement (0x2A35), converted to mmHg when sent in kPa. @param {DataView} v */
export function parseBloodPressure(v) {
  const kpa = v.getUint8(0) & 1;
  const k = kpa ? 7.50062 : 1;
  return { bp_sys: sfloat(v, 1) * k, bp_dia: sfloat(v, 3) * k, bp_mean: sfloat(v, 5) * k };
}

/** Temperature Measurement (0x2A1C), converted to °C when sent in °F. @param {DataView} v */
export function parseTemperature(v) {
  const f = v.getUint8(0) & 1;
  const t = float32(v, 1);
  return { temp: f ? ((t - 32) * 5) / 9 : t };
}

const PARSERS = {
  heart_rate: parseHeartRate,
  pulse_oximeter: parsePlxContinuous,
  blood_pressure: parseBloodPressure,
  health_thermometer: parseTemperature,
};

/** Whether this browser can reach Bluetooth devices. */
export function bluetoothAvailable() {
  return typeof navigator !== 'undefined' && 'bluetooth' in navigator;
}

/**
 * A Bluetooth device chosen by the user (the browser's chooser, after a click), offering any
 * of the four services.
 * @returns {VitalsSource}
 */
export function bluetoothDevice() {
  /** @type {any} */
  let device = null;
  return {
    kind: 'ble',
    async start(sink) {
      const bt = /** @type {any} */ (navigator).bluetooth;
      device = await bt.requestDevice({
        filters: Object.values(SERVICES).map((s) => ({ services: [s] })),
      });
      const server = await device.gatt.connect();
      for (const [name, uuid] of Object.entries(SERVICES)) {
        let service;
        try {
          service = await server.getPrimaryService(uuid);
        } catch {
          continue; // the device does not offer this one
        }
        const ch = await service.getCharacteristic(MEASUREMENT[/** @type {keyof typeof MEASUREMENT} */ (name)]);
        const parse = PARSERS[/** @type {keyof typeof PARSERS} */ (name)];
        ch.addEventListener('characteristicvaluechanged', (/** @type {any} */ ev) => {
          try {
            const values = parse(ev.target.value);
            const finite = Object.fromEntries(Object.entries(values).filter(([, x]) => Number.isFinite(x)));
            sink.numerics(clock(), finite);
          } catch {
            // a malformed measurement is skipped
          }
        });
        await ch.startNotifications();
      }
    },
    stop() {
      if (device && device.gatt && device.gatt.connected) device.gatt.disconnect();
      device = null;
    },
  };
}
