// notification (通知): everything the console asks of it, under /api/notification.
import { get, post, request } from './http'

const base = '/api/notification'
export const subscriptions = (recipient) => get(`${base}/subscriptions`, { recipient })
export const subscribe = (body) => post(`${base}/subscriptions`, body)
export const unsubscribe = (id, recipient) =>
  request('DELETE', `${base}/subscriptions/${encodeURIComponent(id)}`, { query: { recipient } })
