// routing (分类、交办): everything the console asks of it, under /api/routing.
import { get, post } from './http'

const base = '/api/routing'
export const triage = () => get(`${base}/triage`)
export const decide = (id, body) => post(`${base}/triage/${id}`, body)
export const departments = () => get(`${base}/departments`)
export const disputes = () => get(`${base}/disputes`)
export const models = () => get(`${base}/models`)
export const activateModel = (version) => post(`${base}/models/${encodeURIComponent(version)}/activate`)
